//! Wi-Fi for boards without Ethernet: the wpa_supplicant configuration that
//! systemd's `wpa_supplicant@wlan0.service` reads.

use std::io;
use std::path::Path;

use crate::config::Wifi;
use vantage_node::durable::atomic_write;

/// The file `wpa_supplicant@wlan0.service` reads.
pub const DEFAULT_WPA_CONF: &str = "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf";

/// The configuration text. The network name is written in hex and the
/// passphrase as its derived 256-bit key (or the key itself when the
/// volunteer gave 64 hex digits), so no character in either can break the
/// file's syntax, and the passphrase itself is not stored.
pub fn render(w: &Wifi) -> String {
    let mut s = format!(
        "# Written by vantage-provision from vantage.toml on the boot partition.\n\
         # Change the [wifi] section there rather than this file.\n\
         ctrl_interface=DIR=/run/wpa_supplicant\n\
         update_config=0\n\
         country={}\n\
         \n\
         network={{\n\
         \tssid={}\n\
         \tscan_ssid=1\n",
        w.country,
        hex(w.ssid.as_bytes())
    );
    match &w.passphrase {
        Some(p) => {
            s.push_str("\tkey_mgmt=WPA-PSK\n");
            let key = if crate::config::is_raw_psk(p) {
                p.to_ascii_lowercase()
            } else {
                hex(&psk(&w.ssid, p))
            };
            s.push_str(&format!("\tpsk={key}\n"));
        }
        None => s.push_str("\tkey_mgmt=NONE\n"),
    }
    s.push_str("}\n");
    s
}

/// Writes the configuration (mode 0600: it holds the network key) if it
/// differs from what is there. Returns true when the file changed.
pub fn apply(path: &Path, w: &Wifi) -> io::Result<bool> {
    let text = render(w);
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    atomic_write(path, text.as_bytes(), 0o600)?;
    Ok(true)
}

/// The WPA pre-shared key: PBKDF2-HMAC-SHA1(passphrase, ssid, 4096, 32 bytes)
/// (IEEE 802.11i, what `wpa_passphrase` prints).
fn psk(ssid: &str, passphrase: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        std::num::NonZeroU32::new(4096).expect("non-zero"),
        ssid.as_bytes(),
        passphrase.as_bytes(),
        &mut out,
    );
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn psk_matches_the_ieee_test_vector() {
        // IEEE 802.11i-2004, H.4.1: passphrase "password", SSID "IEEE".
        assert_eq!(
            hex(&psk("IEEE", "password")),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
    }

    #[test]
    fn writes_once_with_country_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wpa_supplicant/wpa_supplicant-wlan0.conf");
        let w = Wifi {
            country: "DE".into(),
            ssid: "My \"Net\"\n".into(),
            passphrase: Some("correct horse".into()),
        };
        assert!(apply(&path, &w).unwrap());
        assert!(!apply(&path, &w).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\ncountry=DE\n"));
        assert!(text.contains("\tssid=4d7920224e6574220a\n"));
        assert!(!text.contains("horse"));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A key given as 64 hex digits is the key: used as it is, not hashed.
        let key = "F42C6FC52DF0EBEF9EBB4B90B38A5F902E83FE1B135A70E23AED762E9710A12E";
        let raw = Wifi {
            passphrase: Some(key.into()),
            ..w.clone()
        };
        assert!(apply(&path, &raw).unwrap());
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(&format!("\tpsk={}\n", key.to_ascii_lowercase()))
        );
        let open = Wifi {
            passphrase: None,
            ..w
        };
        assert!(apply(&path, &open).unwrap());
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("key_mgmt=NONE")
        );
    }
}
