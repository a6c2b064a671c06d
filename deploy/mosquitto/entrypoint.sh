#!/bin/sh
# First start: the dynamic security plugin's configuration with only the manager's login
# (later starts keep the logins the manager created; to change MQTT_MANAGER_PASSWORD, remove
# dynamic-security.json from the mqtt-data volume while no project runs). Then run Mosquitto.
set -eu
: "${MQTT_MANAGER_PASSWORD:?set MQTT_MANAGER_PASSWORD in .env}"
umask 077
plugin=$(ls /usr/lib/mosquitto_dynamic_security.so /usr/lib/*/mosquitto_dynamic_security.so \
  2>/dev/null | head -n 1)
if [ -z "$plugin" ]; then
  echo "Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is missing" >&2
  exit 1
fi
config=/mosquitto/data/dynamic-security.json
if [ ! -f "$config" ]; then
  mosquitto_ctrl dynsec init "$config" flops-manager "$MQTT_MANAGER_PASSWORD" >/dev/null
fi
sed "s#@DYNSEC_PLUGIN@#$plugin#" /flops/mosquitto.conf > /mosquitto/data/mosquitto.conf
chown mosquitto:mosquitto "$config" /mosquitto/data/mosquitto.conf 2>/dev/null || true
exec mosquitto -c /mosquitto/data/mosquitto.conf
