#!/usr/bin/env bash
# Build the image on a machine that cannot pull from Docker Hub, then check that two containers
# serve: a local base made with debootstrap (Debian's python3, python3-venv) and `docker import`,
# our own dockerd (no iptables, no bridge: containers on the host network), stopped by its PID.
#
#   bash deploy/docker/build_local.sh            # as root; needs docker.io and debootstrap
#
# Prints the image size, the build time, and each container's time to readiness and memory (RSS
# of its server process once ready, every model of models/ loaded).
set -euo pipefail
cd "$(dirname "$0")/../.."

WORK="${WORK:-/tmp/tf-model-serving-docker}"
BASE="local/debian-python:bookworm"
IMAGE="tf-model-serving:local"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PORTS=(18081 18082)
mkdir -p "$WORK"

dockerd --iptables=false --bridge=none --data-root "$WORK/data" --exec-root "$WORK/exec" \
    --pidfile "$WORK/dockerd.pid" -H "unix://$WORK/docker.sock" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST="unix://$WORK/docker.sock"
cleanup() {
    for port in "${PORTS[@]}"; do docker rm -f "tfms-$port" >/dev/null 2>&1 || true; done
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "== debootstrap bookworm (minbase + python3, python3-venv, ca-certificates)"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
    # pip inside the build talks TLS through this network: give it the host's CA bundle.
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/host-ca-bundle.crt"
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb
    tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
fi

echo "== docker build"
start=$(date +%s)
docker build --network host --build-arg "BASE_IMAGE=$BASE" \
    --build-arg PIP_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; exit 1; }
build_s=$(( $(date +%s) - start ))
size=$(docker image inspect "$IMAGE" --format '{{.Size}}')
echo "image $IMAGE: $(( size / 1024 / 1024 )) MiB, built in ${build_s} s"

for port in "${PORTS[@]}"; do
    docker run -d --network host -e "SERVING_PORT=$port" --name "tfms-$port" "$IMAGE" >/dev/null
done
start=$(date +%s.%N)
for port in "${PORTS[@]}"; do
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
        sleep 0.2
    done
    ready=$(echo "$(date +%s.%N) - $start" | bc)
    user=$(docker exec "tfms-$port" id -un)
    pid=$(docker inspect "tfms-$port" --format '{{.State.Pid}}')
    rss_mb=$(( $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") / 1024 ))
    answer=$(curl -sf -X POST "http://127.0.0.1:$port/v2/models/mnist/infer" \
        -H 'Content-Type: application/json' \
        -d '{"inputs":[{"name":"pixels","shape":[1,28,28,1],"datatype":"UINT8","data":'"$(python3 -c 'print([0]*784)')"'}]}')
    echo "container on :$port ready after ${ready} s (user $user, RSS ${rss_mb} MB): ${answer:0:90}..."
done
docker stop -t 40 "tfms-${PORTS[0]}" >/dev/null && echo "docker stop: clean exit ($(docker inspect "tfms-${PORTS[0]}" --format '{{.State.ExitCode}}'))"
