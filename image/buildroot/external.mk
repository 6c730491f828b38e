include $(sort $(wildcard $(BR2_EXTERNAL_VANTAGE_PATH)/package/*/*.mk))
