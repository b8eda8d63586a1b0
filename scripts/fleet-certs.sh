#!/usr/bin/env bash
# Certificates for a Karekod fleet: a CA, the broker's certificate, one per station and one per
# submitter, and the broker's ACL file. Each client certificate's common name is its identity on
# the broker (broker/mosquitto.conf: use_identity_as_username, use_username_as_clientid).
#
#   scripts/fleet-certs.sh DIR --broker mqtt.hastane.local [--prefix karekod/v1] \
#       --station dock-a --station line-1 --submitter central-1
#
# Writes DIR/ca.{crt,key} (keep the key offline), DIR/broker.{crt,key}, DIR/station-ID.{crt,key},
# DIR/submitter-ID.{crt,key} and DIR/acl. Run again with new --station names to add stations: the
# CA and existing certificates are kept. Keys are mode 0600.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 2; }
dir=$1; shift
broker=localhost; prefix=karekod/v1; stations=(); submitters=(); days=${DAYS:-1095}
while [ $# -gt 0 ]; do
  case $1 in
    --broker) broker=$2; shift 2;;
    --prefix) prefix=$2; shift 2;;
    --station) stations+=("$2"); shift 2;;
    --submitter) submitters+=("$2"); shift 2;;
    *) echo "fleet-certs: unknown argument $1" >&2; exit 2;;
  esac
done
valid='^[A-Za-z0-9_-]{1,64}$'
for name in "${stations[@]}" "${submitters[@]}"; do
  [[ $name =~ $valid ]] || { echo "fleet-certs: '$name': 1-64 letters, digits, - or _" >&2; exit 2; }
done
mkdir -p "$dir"; chmod 0755 "$dir"; umask 077
ssl() { openssl "$@" 2>/dev/null; }
if [ ! -f "$dir/ca.key" ]; then
  ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -days "$days" -subj "/CN=Karekod fleet CA"
fi
issue() {  # issue NAME CN [SAN]
  local name=$1 cn=$2 san=${3:-}
  [ -f "$dir/$name.crt" ] && return 0
  ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/$name.key" -out "$dir/$name.csr" \
    -subj "/CN=$cn"
  local ext="$dir/$name.ext"
  if [ -n "$san" ]; then printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$ext"
  else printf 'extendedKeyUsage=clientAuth\n' > "$ext"; fi
  ssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days "$days" \
    -extfile "$ext" -out "$dir/$name.crt"
  rm -f "$dir/$name.csr" "$ext"
}
san="DNS:$broker"; [[ $broker =~ ^[0-9.]+$ ]] && san="IP:$broker"
issue broker "$broker" "$san,DNS:localhost,IP:127.0.0.1"
for s in "${stations[@]}"; do issue "station-$s" "$s"; done
for s in "${submitters[@]}"; do issue "submitter-$s" "submitter.$s"; done
chmod 0644 "$dir"/*.crt

here=$(cd "$(dirname "$0")/.." && pwd)
sed "s#@PREFIX@#$prefix#g" "$here/broker/acl.template" > "$dir/acl"
for f in "$dir"/submitter-*.crt; do
  [ -e "$f" ] || continue
  id=$(basename "$f" .crt); id=${id#submitter-}
  cat >> "$dir/acl" <<ACL

user submitter.$id
topic read $prefix/stations/+/events
topic read $prefix/stations/+/status
topic read $prefix/stations/+/result_acks
topic read $prefix/stations/+/delivery_acks
topic read $prefix/stations/+/summaries
topic write $prefix/stations/+/deliveries
topic write $prefix/stations/+/orders
topic write $prefix/stations/+/recalls
topic read $prefix/stations/+/patient
topic write $prefix/stations/+/acks
topic write $prefix/stations/+/results
topic readwrite $prefix/central/status/$id
ACL
done
chmod 0644 "$dir/acl"
echo "fleet-certs: $dir: CA, broker ($broker), ${#stations[@]} station(s), ${#submitters[@]} submitter(s), acl"
