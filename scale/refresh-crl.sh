#!/usr/bin/env bash
# Installs the hub's current CRL for nginx and reloads nginx when it changed.
# Run it every few minutes (systemd timer or cron) on every nginx + Nchan host:
# revocations reach nginx within that interval, and the hub re-signs its CRL
# well before the 7-day nextUpdate, after which nginx would refuse every node.
#
# Usage: refresh-crl.sh HUB_URL CA_FILE CRL_FILE
#   e.g. refresh-crl.sh https://hub.example.net:8443 /etc/nginx/vantage/ca.pem /etc/nginx/vantage/crl.pem
# Environment: NGINX_RELOAD (default "nginx -s reload").
set -euo pipefail
hub=${1:?usage: refresh-crl.sh HUB_URL CA_FILE CRL_FILE}
ca=${2:?usage: refresh-crl.sh HUB_URL CA_FILE CRL_FILE}
crl=${3:?usage: refresh-crl.sh HUB_URL CA_FILE CRL_FILE}
tmp=$(mktemp "$crl.XXXXXX")
trap 'rm -f "$tmp"' EXIT
curl -fsS --max-time 30 --cacert "$ca" -o "$tmp" "$hub/v1/crl?format=pem"
if ! grep -q -- '-----BEGIN X509 CRL-----' "$tmp"; then
  echo "error: $hub/v1/crl?format=pem did not return a PEM CRL; nginx keeps the old one" >&2
  exit 1
fi
if ! openssl crl -in "$tmp" -CAfile "$ca" -noout 2>/dev/null; then
  echo "error: the CRL from $hub is not signed by $ca; nginx keeps the old one" >&2
  exit 1
fi
if cmp -s "$tmp" "$crl"; then
  exit 0
fi
chmod 644 "$tmp"
mv "$tmp" "$crl"
${NGINX_RELOAD:-nginx -s reload}
echo "refresh-crl: new CRL from $hub installed, nginx reloaded"
