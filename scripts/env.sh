# Sourced by the scripts: installs missing system packages and points the rocksdb crate
# at the system RocksDB library, so that it is linked rather than compiled from C++
# source (which takes about half an hour on two cores).

need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in libclang-dev librocksdb-dev; do
  have_pkg "$pkg" || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  echo "installing missing system packages: ${need_pkgs[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
  ROCKSDB_LIB_DIR="$(dirname "$(dpkg -L librocksdb-dev | grep -m1 '/librocksdb\.so$')")"
  export ROCKSDB_LIB_DIR
fi
