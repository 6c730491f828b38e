################################################################################
#
# vantage
#
################################################################################

# Prebuilt static binaries from `make agent` (out/bin/<rust target>/), so the
# image runs exactly what CI checked; no Rust toolchain inside Buildroot.
VANTAGE_VERSION = prebuilt
VANTAGE_LICENSE = Apache-2.0

ifeq ($(BR2_aarch64),y)
VANTAGE_RUST_TARGET = aarch64-unknown-linux-musl
else
VANTAGE_RUST_TARGET = arm-unknown-linux-musleabihf
endif

VANTAGE_SITE = $(call qstrip,$(BR2_PACKAGE_VANTAGE_BIN_DIR))/$(VANTAGE_RUST_TARGET)
VANTAGE_SITE_METHOD = local
VANTAGE_OVERLAY = $(BR2_EXTERNAL_VANTAGE_PATH)/../overlay

# Same uid/gid as image/overlay/usr/lib/sysusers.d/vantage.conf (the boot
# partition is mounted with uid=640,gid=640); created at build time because
# the root file system is read-only.
define VANTAGE_USERS
	vantage 640 vantage 640 * /var/lib/vantage - - vantage node
endef

# Refuse binaries that are not the ones make agent wrote.
define VANTAGE_BUILD_CMDS
	cd $(@D) && sha256sum -c SHA256SUMS
endef

define VANTAGE_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/vantage-agent $(TARGET_DIR)/usr/bin/vantage-agent
	$(INSTALL) -D -m 0755 $(@D)/vantage-provision $(TARGET_DIR)/usr/bin/vantage-provision
endef

define VANTAGE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(VANTAGE_OVERLAY)/usr/lib/systemd/system/vantage-agent.service \
		$(TARGET_DIR)/usr/lib/systemd/system/vantage-agent.service
	$(INSTALL) -D -m 0644 $(VANTAGE_OVERLAY)/usr/lib/systemd/system/vantage-provision.service \
		$(TARGET_DIR)/usr/lib/systemd/system/vantage-provision.service
endef

$(eval $(generic-package))
