# Sourced by the device scripts: unpacks the carried binary and the Debian libraries it needs, installs open_clip;
# `el` prints the seconds since it finished (the scripts' step timer).
D=${D:-.device}
mkdir -p /tmp/lib /tmp/site
python3 -c "import tarfile; tarfile.open('$D/lib.tar.xz').extractall('/tmp/lib')"
export LD_LIBRARY_PATH="/tmp/lib:${LD_LIBRARY_PATH:-}"
export CLIPSERVE_CACHE=/tmp/clipserve-cache
BIN=/tmp/clipserve
if [ -f $D/pair.tar.xz ]; then  # this binary and the one to compare it with (clipserve-old), packed together
  python3 -c "import tarfile; tarfile.open('$D/pair.tar.xz').extractall('/tmp')"
else
  python3 -c "import lzma; open('$BIN','wb').write(lzma.open('$D/clipserve.xz').read())" && chmod +x $BIN
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $D/wheels/*.whl > "$OUT/pip.log" 2>&1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
start=$(date +%s)
el() { echo "t=$(( $(date +%s) - start ))s"; }
