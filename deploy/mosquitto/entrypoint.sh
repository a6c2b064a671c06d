#!/bin/sh
# Create the password file from the environment (never stored in the image or the compose
# file), then run Mosquitto in the foreground.
set -eu
: "${MQTT_MANAGER_PASSWORD:?set MQTT_MANAGER_PASSWORD in .env}"
: "${MQTT_COMPONENT_PASSWORD:?set MQTT_COMPONENT_PASSWORD in .env}"
umask 077
rm -f /mosquitto/data/passwd
touch /mosquitto/data/passwd
mosquitto_passwd -b /mosquitto/data/passwd flops-manager "$MQTT_MANAGER_PASSWORD"
mosquitto_passwd -b /mosquitto/data/passwd flops-component "$MQTT_COMPONENT_PASSWORD"
chown mosquitto:mosquitto /mosquitto/data/passwd 2>/dev/null || true
exec mosquitto -c /flops/mosquitto.conf
