#!/usr/bin/env bash
# servers.sh DIR: install the second version of each XMPP server gavel is
# tested against (Prosody 13, ejabberd 24.12) into DIR, beside the system's
# Prosody 0.12 and ejabberd 23.01 (make deps), without replacing them.
#
# Each server's .deb comes from Debian's archive (apt-get download, with a
# private apt state under DIR/.apt, so the system's sources and lists are
# left alone) and is unpacked with dpkg-deb -x:
#
#   DIR/prosody-13/usr/bin/prosody      GAVEL_PROSODY13 (the harness's default)
#   DIR/ejabberd-24/                    GAVEL_EJABBERD24 (an unpacked root)
#
# Prosody 13 runs on the Lua 5.4 libraries Prosody 0.12 uses; the few it
# lacks are installed system-wide with apt-get (that replaces nothing).
# ejabberd 24.12 from bookworm-backports runs on bookworm's Erlang (25.2),
# but needs newer Erlang libraries than ejabberd 23 (p1_xmpp 1.9 and more):
# those are unpacked into DIR/ejabberd-24 too and come first in ERL_LIBS.
#
# Idempotent: a server whose DIR/<name>/.version holds its pin and its
# directory is left as it is (Prosody's scripts name their own directory, so
# a moved checkout reinstalls); the archive is only asked when something is
# missing.
set -euo pipefail

# Version pins: the one place to change them (apt-cache madison NAME in the
# suite lists what the archive has).
SUITE=bookworm-backports
PROSODY_13=13.0.1-1~bpo12+1
EJABBERD_24=24.12-3~bpo12+1

root=${1:?usage: scripts/servers.sh DIR}
mkdir -p "$root"
root=$(cd "$root" && pwd)
apt_dir=$root/.apt
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

say() { echo "servers.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# papt runs apt-get or apt-cache on the private state: only $SUITE's
# sources, lists and downloaded archives under DIR/.apt.
papt() {
	local tool=$1
	shift
	"$tool" -o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" \
		-o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}

updated=
update() {
	[ -n "$updated" ] && return
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main" >"$apt_dir/sources.list"
	say "apt-get update ($SUITE, private lists in $apt_dir)"
	papt apt-get update -qq >/dev/null || die "apt-get update of $SUITE failed (is deb.debian.org reachable?)"
	updated=1
}

# fetch NAME VERSION DEST: download NAME=VERSION from $SUITE into DEST, or
# fail saying which versions the archive has.
fetch() {
	local name=$1 version=$2 dest=$3
	update
	if ! (cd "$dest" && papt apt-get download -qq "$name=$version" >/dev/null 2>&1); then
		local have
		have=$(papt apt-cache madison "$name" | awk -F'|' '{gsub(/ /,"",$2); gsub(/^ +| +$/,"",$3); print $2 " (" $3 ")"}' | paste -sd, -)
		die "Debian's archive has no $name=$version in $SUITE (it has: ${have:-nothing}); update the pin in scripts/servers.sh"
	fi
}

installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

prosody13() {
	local dst=$root/prosody-13
	[ "$(cat "$dst/.version" 2>/dev/null)" = "$PROSODY_13 $dst" ] && return
	say "installing prosody $PROSODY_13 into $dst"
	local tmp=$dst.tmp
	rm -rf "$tmp" && mkdir -p "$tmp/deb"
	fetch prosody "$PROSODY_13" "$tmp/deb"
	dpkg-deb -x "$tmp"/deb/prosody_*.deb "$tmp"
	# The Lua libraries it needs, system-wide from bookworm (Prosody 0.12
	# uses most of them); --no-upgrade: what is installed stays as it is.
	local deps
	deps=$(dpkg-deb -f "$tmp"/deb/prosody_*.deb Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep '^lua' | paste -sd' ' -)
	local install="$SUDO apt-get install -y -qq --no-install-recommends --no-upgrade $deps"
	if ! DEBIAN_FRONTEND=noninteractive $install >/dev/null; then
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $install >/dev/null
	fi
	# Point the scripts at their own sources, not the system Prosody's.
	sed -i "s|^CFG_SOURCEDIR=.*|CFG_SOURCEDIR='$dst/usr/lib/prosody';|; s|^CFG_PLUGINDIR=.*|CFG_PLUGINDIR='$dst/usr/lib/prosody/modules/';|" \
		"$tmp/usr/bin/prosody" "$tmp/usr/bin/prosodyctl"
	rm -rf "$tmp/deb" "$dst"
	mv "$tmp" "$dst"
	echo "$PROSODY_13 $dst" >"$dst/.version"
}

ejabberd24() {
	local dst=$root/ejabberd-24
	[ "$(cat "$dst/.version" 2>/dev/null)" = "$EJABBERD_24 $dst" ] && return
	say "installing ejabberd $EJABBERD_24 into $dst"
	[ -x /usr/bin/erl ] || die "ejabberd $EJABBERD_24 runs on the system's Erlang: run make deps (apt-get install ejabberd) first"
	local tmp=$dst.tmp
	rm -rf "$tmp" && mkdir -p "$tmp/deb"
	fetch ejabberd "$EJABBERD_24" "$tmp/deb"
	# Each Erlang dependency the system does not satisfy comes from $SUITE
	# too; Erlang/OTP itself (erlang-base, erlang-ssl, ...) must not: a
	# newer OTP would replace the one ejabberd 23 runs on.
	local dep name op want have
	while read -r dep; do
		[ -n "$dep" ] || continue
		name=${dep%% *}
		case $name in erlang-*) ;; *) continue ;; esac
		want=$(sed -n 's/.*(\([<>=]*\) *\(.*\))/\2/p' <<<"$dep")
		op=$(sed -n 's/.*(\([<>=]*\) .*/\1/p' <<<"$dep")
		[ "$op" = "=" ] && continue # erlang-abi: a virtual package
		have=$(installed_version "$name")
		if [ -n "$have" ] && { [ -z "$want" ] || dpkg --compare-versions "$have" "$op" "$want"; }; then
			continue
		fi
		case $want in 1:*) die "ejabberd $EJABBERD_24 needs $dep, the system has ${have:-none}: it cannot run beside ejabberd 23 without a newer Erlang/OTP" ;; esac
		fetch "$name" "$(papt apt-cache madison "$name" | awk -F'|' -v s="$SUITE" '$3 ~ s {gsub(/ /,"",$2); print $2; exit}')" "$tmp/deb"
	done < <(dpkg-deb -f "$tmp"/deb/ejabberd_*.deb Depends | tr ',' '\n' | sed 's/^ *//; s/|.*//')
	for deb in "$tmp"/deb/*.deb; do
		dpkg-deb -x "$deb" "$tmp"
	done
	ls "$tmp"/usr/lib/*/ejabberd-*/ebin/ejabberd.app >/dev/null 2>&1 || die "ejabberd $EJABBERD_24: no ejabberd.app in the package"
	(cd "$tmp/deb" && ls) | sed 's/\.deb$//' >"$tmp/PACKAGES"
	rm -rf "$tmp/deb" "$dst"
	mv "$tmp" "$dst"
	echo "$EJABBERD_24 $dst" >"$dst/.version"
}

prosody13
ejabberd24
