#!/usr/bin/env python3
"""Parse meta-phare with BitBake's own parser, offline, and check the result.

There is no OE-Core here (no network, no build host), so the check builds a
stand-in "core" layer in a temporary directory: a small bitbake.conf and stub
classes (base, cargo, systemd, useradd, overlayfs, core-image, ...) that define
the variables and tasks meta-phare relies on, the way OE-Core's classes do.
Everything of meta-phare itself is real and goes through bb.parse: its
layer.conf (and BBFILES, and the LAYERSERIES_COMPAT check bitbake makes), the
phare distro configuration, the three recipes, the shared .inc files, the
inherits, overrides, :append, flags, inline python and anonymous functions.
Then the expanded values are checked against the source tree, and every
SRC_URI entry goes through BitBake's fetcher (bb.fetch2, which parses the
crate:// and git:// URLs and binds each crate to its checksum) without
fetching anything.

Run with the `bb` library on sys.path (pip install bitbake-setup ships it).
Prints one line per check; exits 1 if any fails.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import tomllib
import types
from pathlib import Path

# bitbake-setup ships BitBake's `bb` package but not its sibling `hashserv`
# (the hash-equivalence client), which bb.siggen imports and parsing never
# calls: empty modules stand in for it.
if "hashserv" not in sys.modules:
    _hashserv = types.ModuleType("hashserv")
    _hashserv.__path__ = []
    _hashserv.client = types.ModuleType("hashserv.client")
    sys.modules["hashserv"] = _hashserv
    sys.modules["hashserv.client"] = _hashserv.client

import bb  # noqa: E402
import bb.data  # noqa: E402
import bb.fetch2  # noqa: E402
import bb.parse  # noqa: E402
import bb.siggen  # noqa: E402
import bb.utils  # noqa: E402

from tally import check, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "yocto/meta-phare"
MACHINE = "raspberrypi4-64"



# ---------------------------------------------------------------------------
# The stand-in core layer. Values follow OE-Core (wrynose) where meta-phare
# depends on them; everything else is left out on purpose.

STUB_FILES = {
    "conf/layer.conf": """
        BBPATH .= ":${LAYERDIR}"
        BBFILE_COLLECTIONS += "core"
        BBFILE_PATTERN_core = "^${LAYERDIR}/"
        BBFILE_PRIORITY_core = "5"
        LAYERSERIES_CORENAMES = "wrynose"
        LAYERSERIES_COMPAT_core = "wrynose"
        COMMON_LICENSE_DIR = "${LAYERDIR}/files/common-licenses"
        """,
    # meta-lts-mixins' wrynose/rust layer: only its collection name matters.
    "mixin/conf/layer.conf": """
        BBFILE_COLLECTIONS += "wrynose-rust-mixin"
        BBFILE_PATTERN_wrynose-rust-mixin = "^${LAYERDIR}/"
        LAYERSERIES_COMPAT_wrynose-rust-mixin = "wrynose"
        RUSTVERSION ?= "1.96.1%"
        """,
    "conf/bitbake.conf": """
        TOPDIR ?= "${@os.getcwd()}"
        TMPDIR = "${TOPDIR}/tmp"
        DL_DIR = "${TOPDIR}/downloads"
        FETCHCMD_git = "git -c core.fsyncobjectfiles=0"
        BB_NUMBER_THREADS = "1"
        PN = "${@bb.parse.vars_from_file(d.getVar('FILE', False), d)[0] or 'defaultpkgname'}"
        PV = "${@bb.parse.vars_from_file(d.getVar('FILE', False), d)[1] or '1.0'}"
        PR = "r0"
        BPN = "${PN}"
        BP = "${BPN}-${PV}"
        FILE_DIRNAME = "${@os.path.dirname(d.getVar('FILE', False))}"
        FILESPATH = "${FILE_DIRNAME}/${BP}:${FILE_DIRNAME}/${BPN}:${FILE_DIRNAME}/files"
        WORKDIR = "${TMPDIR}/work/${PN}/${PV}"
        UNPACKDIR = "${WORKDIR}/sources"
        S = "${UNPACKDIR}/${BP}"
        B = "${S}"
        D = "${WORKDIR}/image"
        T = "${WORKDIR}/temp"
        SRCREV ??= "INVALID"
        SRC_URI = ""
        DEPENDS = ""
        BASEDEPENDS = ""
        PACKAGES = "${PN}-dbg ${PN}-dev ${PN}-doc ${PN}"
        FILES:${PN} = "${bindir}/* ${sysconfdir} ${systemd_system_unitdir}"

        # usrmerge layout
        base_prefix = ""
        prefix = "/usr"
        exec_prefix = "${prefix}"
        bindir = "${exec_prefix}/bin"
        sbindir = "${exec_prefix}/sbin"
        libdir = "${exec_prefix}/lib"
        datadir = "${prefix}/share"
        base_bindir = "${prefix}/bin"
        base_sbindir = "${prefix}/sbin"
        nonarch_base_libdir = "${prefix}/lib"
        nonarch_libdir = "${exec_prefix}/lib"
        sysconfdir = "/etc"
        localstatedir = "/var"
        systemd_unitdir = "${nonarch_base_libdir}/systemd"
        systemd_system_unitdir = "${nonarch_base_libdir}/systemd/system"

        MACHINE ??= "qemuarm64"
        TARGET_ARCH = "aarch64"
        TARGET_OS = "linux"
        MACHINEOVERRIDES = "${MACHINE}"
        DISTRO ??= "nodistro"
        DISTROOVERRIDES = "${DISTRO}"
        CLASSOVERRIDE = "class-target"
        OVERRIDES = "${TARGET_OS}:${TARGET_ARCH}:pn-${PN}:${MACHINEOVERRIDES}:${DISTROOVERRIDES}:${CLASSOVERRIDE}:forcevariable"

        # wrynose: DISTRO_FEATURES_DEFAULTS are added to every distro's
        # DISTRO_FEATURES, less DISTRO_FEATURES_OPTED_OUT.
        DISTRO_FEATURES_DEFAULTS = "acl alsa bluetooth debuginfod ext2 ipv4 ipv6 pcmcia usbgadget usbhost wifi xattr nfs zeroconf pci 3g nfc x11 vfat seccomp multiarch opengl ptest vulkan wayland"
        DISTRO_FEATURES_OPTED_OUT ??= ""
        DISTRO_FEATURES ??= ""
        DISTRO_FEATURES:append = " ${@' '.join(f for f in d.getVar('DISTRO_FEATURES_DEFAULTS').split() if f not in d.getVar('DISTRO_FEATURES_OPTED_OUT').split())}"
        INIT_MANAGER ??= "systemd"
        LICENSE_FLAGS_ACCEPTED ??= ""
        IMAGE_FEATURES ??= ""
        IMAGE_LINGUAS ??= "en-us"

        require conf/machine/${MACHINE}.conf
        require conf/distro/${DISTRO}.conf
        """,
    # What meta-raspberrypi's machines give the layer: the "rpi" override.
    "conf/machine/raspberrypi4-64.conf": """
        MACHINEOVERRIDES =. "rpi:"
        WKS_FILE ?= "sdimage-raspberrypi.wks"
        IMAGE_BOOT_FILES ?= "bootfiles/* Image;kernel8.img"
        """,
    "conf/machine/raspberrypi5.conf": """
        MACHINEOVERRIDES =. "rpi:"
        WKS_FILE ?= "sdimage-raspberrypi.wks"
        IMAGE_BOOT_FILES ?= "bootfiles/* Image;kernel_2712.img"
        """,
    "files/common-licenses/Apache-2.0": "Apache License 2.0 (stand-in)\n",
    "files/common-licenses/MIT": "MIT License (stand-in)\n",
    "classes-global/base.bbclass": """
        BB_DEFAULT_TASK ?= "build"
        base_do_fetch() {
            :
        }
        base_do_unpack() {
            :
        }
        base_do_configure() {
            :
        }
        base_do_compile() {
            :
        }
        base_do_install() {
            :
        }
        base_do_build() {
            :
        }
        addtask fetch
        addtask unpack after do_fetch
        addtask patch after do_unpack
        addtask configure after do_patch
        addtask compile after do_configure
        addtask install after do_compile
        addtask build after do_install
        EXPORT_FUNCTIONS do_fetch do_unpack do_configure do_compile do_install do_build
        """,
    # OE-Core's cargo class: the variables and do_install it defines.
    "classes-recipe/cargo.bbclass": """
        inherit cargo_common
        CARGO = "cargo"
        BASEDEPENDS:append = " cargo-native"
        DEPENDS:append:class-target = " rust-native libstd-rs"
        B = "${WORKDIR}/build"
        CARGO_SRC_DIR ??= ""
        CARGO_MANIFEST_PATH ??= "${S}/${CARGO_SRC_DIR}/Cargo.toml"
        RUST_HOST_SYS = "${TARGET_ARCH}-phare-linux-gnu"
        BUILD_MODE = "${@['--release', ''][d.getVar('DEBUG_BUILD') == '1']}"
        CARGO_BUILD_FLAGS = "-v --frozen --target ${RUST_HOST_SYS} ${BUILD_MODE} --manifest-path=${CARGO_MANIFEST_PATH}"
        BUILD_DIR = "${@['release', 'debug'][d.getVar('DEBUG_BUILD') == '1']}"
        CARGO_TARGET_SUBDIR = "${RUST_HOST_SYS}/${BUILD_DIR}"
        cargo_do_compile() {
            "${CARGO}" build ${CARGO_BUILD_FLAGS}
        }
        cargo_do_install() {
            die "cargo_do_install must be overridden by meta-phare"
        }
        EXPORT_FUNCTIONS do_compile do_install
        """,
    "classes-recipe/cargo_common.bbclass": """
        CARGO_HOME = "${WORKDIR}/cargo_home"
        CARGO_VENDORING_DIRECTORY ?= "${CARGO_HOME}/bitbake"
        export PKG_CONFIG_ALLOW_CROSS = "1"
        """,
    "classes-recipe/cargo-update-recipe-crates.bbclass": """
        addtask do_update_crates after do_patch
        do_update_crates[nostamp] = "1"
        CARGO_LOCK_SRC_DIR ??= "${S}"
        do_update_crates() {
            :
        }
        """,
    "classes-recipe/pkgconfig.bbclass": """
        DEPENDS:prepend = "pkgconfig-native "
        """,
    "classes-recipe/features_check.bbclass": """
        python () {
            missing = [f for f in (d.getVar('REQUIRED_DISTRO_FEATURES') or '').split()
                       if f not in (d.getVar('DISTRO_FEATURES') or '').split()]
            if missing:
                raise bb.parse.SkipRecipe("missing required distro features %s" % missing)
        }
        """,
    "classes-recipe/systemd.bbclass": """
        SYSTEMD_PACKAGES ??= "${PN}"
        SYSTEMD_AUTO_ENABLE ??= "enable"
        REQUIRED_DISTRO_FEATURES:append = " systemd"
        python () {
            for pkg in (d.getVar('SYSTEMD_PACKAGES') or '').split():
                if not d.getVar('SYSTEMD_SERVICE:' + pkg):
                    bb.fatal("SYSTEMD_PACKAGES has %s but SYSTEMD_SERVICE:%s is empty" % (pkg, pkg))
        }
        """,
    "classes-recipe/useradd.bbclass": """
        DEPENDS:append:class-target = " base-files shadow-native shadow-sysroot shadow base-passwd"
        python () {
            pkgs = (d.getVar('USERADD_PACKAGES') or '').split()
            if not pkgs:
                bb.fatal("%s inherits useradd but doesn't set USERADD_PACKAGES" % d.getVar('FILE', False))
            for pkg in pkgs:
                if not (d.getVar('USERADD_PARAM:' + pkg) or d.getVar('GROUPADD_PARAM:' + pkg)
                        or d.getVar('GROUPMEMS_PARAM:' + pkg)):
                    bb.fatal("%s inherits useradd but doesn't set USERADD_PARAM, GROUPADD_PARAM or GROUPMEMS_PARAM for package %s" % (d.getVar('FILE', False), pkg))
        }
        """,
    "classes-recipe/deploy.bbclass": """
        DEPLOYDIR = "${WORKDIR}/deploy-${PN}"
        DEPLOY_DIR_IMAGE ?= "${TMPDIR}/deploy/images/${MACHINE}"
        """,
    "classes-recipe/image.bbclass": """
        IMAGE_FEATURES[validitems] += "read-only-rootfs overlayfs-etc stateless-rootfs empty-root-password ssh-server-dropbear"
        IMAGE_INSTALL ?= ""
        PACKAGE_INSTALL = "${IMAGE_INSTALL}"
        WKS_FILE ??= ""
        python () {
            valid = (d.getVarFlag('IMAGE_FEATURES', 'validitems') or '').split()
            bad = [f for f in (d.getVar('IMAGE_FEATURES') or '').split() if f not in valid]
            if bad:
                bb.fatal("%s: unknown IMAGE_FEATURES %s" % (d.getVar('PN'), bad))
        }
        addtask rootfs before do_build
        addtask image_wic after do_rootfs before do_build
        """,
    "classes-recipe/core-image.bbclass": """
        CORE_IMAGE_EXTRA_INSTALL ?= ""
        CORE_IMAGE_BASE_INSTALL = "packagegroup-core-boot packagegroup-base-extended ${CORE_IMAGE_EXTRA_INSTALL}"
        IMAGE_INSTALL ?= "${CORE_IMAGE_BASE_INSTALL}"
        inherit image
        """,
}


def write_stubs(base: Path) -> None:
    for rel, text in STUB_FILES.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def parse_layers(stub: Path, machine: str):
    """What cookerdata.parse_base_configuration does, for our three layers."""
    d = bb.data.init()
    bb.parse.siggen = bb.siggen.init(d)
    d.setVar("__bbclasstype", "global")
    d.setVar("TOPDIR", str(stub.parent / "build"))
    layers = [stub, stub / "mixin", LAYER]
    d.setVar("BBLAYERS", " ".join(str(p) for p in layers))
    compat = {}
    corenames = set()
    for layer in layers:
        d.setVar("LAYERDIR", str(layer))
        d.setVar("LAYERDIR_RE", re.escape(str(layer)))
        d = bb.parse.handle(str(layer / "conf/layer.conf"), d, True, baseconfig=True)
        d.expandVarref("LAYERDIR")
        d.expandVarref("LAYERDIR_RE")
        for c in (d.getVar("BBFILE_COLLECTIONS") or "").split():
            entry = d.getVar("LAYERSERIES_COMPAT_%s" % c)
            if entry:
                compat[c] = set(entry.split())
                d.delVar("LAYERSERIES_COMPAT_%s" % c)
        if not corenames:
            corenames = set((d.getVar("LAYERSERIES_CORENAMES") or "").split())
    d.delVar("LAYERDIR")
    d.delVar("LAYERDIR_RE")
    d.setVar("MACHINE", machine)
    d.setVar("DISTRO", "phare")
    d = bb.parse.handle("conf/bitbake.conf", d, True, baseconfig=True)
    for cls in ["base"] + (d.getVar("INHERIT") or "").split():
        bb.parse.BBHandler.inherit(cls, "configuration INHERITs", 0, d)
    d.setVar("__bbclasstype", "recipe")
    return d, compat, corenames


def parse_recipe(base_d, fn: str):
    d = bb.data.createCopy(base_d)
    variants = bb.parse.handle(fn, d)
    return variants[""]


def words(d, var):
    return (d.getVar(var) or "").split()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="phare-bbparse-") as tmp:
        stub = Path(tmp) / "stub-core"
        write_stubs(stub)
        (Path(tmp) / "build").mkdir()
        os.chdir(Path(tmp) / "build")

        print("BitBake", bb.__version__, "parsing meta-phare (stand-in OE-Core in a temporary directory)")
        try:
            base, compat, corenames = parse_layers(stub, MACHINE)
        except Exception as e:  # a parse error in layer.conf or the distro
            check(False, "layer.conf and conf/distro/phare.conf parse", f"{type(e).__name__}: {e}")
            return 1
        check(True, "layer.conf and conf/distro/phare.conf parse")

        # The compatibility and dependency rules bitbake's cooker applies.
        colls = words(base, "BBFILE_COLLECTIONS")
        check("phare" in colls, "BBFILE_COLLECTIONS has phare", " ".join(colls))
        check(bool(compat.get("phare")) and bool(compat["phare"] & corenames),
              "LAYERSERIES_COMPAT_phare matches the core series (wrynose)",
              f"{compat.get('phare')} vs {corenames}")
        deps = [x for x in words(base, "LAYERDEPENDS_phare") if not x.startswith("(")]
        check(all(x in colls for x in deps), "LAYERDEPENDS_phare names known collections", " ".join(deps))

        # Distro policy.
        feats = words(base, "DISTRO_FEATURES")
        check(all(f in feats for f in ("systemd", "usrmerge")),
              "DISTRO_FEATURES has systemd usrmerge", " ".join(feats))
        check("x11" not in feats and "ptest" not in feats, "opted-out features are gone (x11, ptest)")
        check(base.getVar("INIT_MANAGER") == "systemd", "INIT_MANAGER = systemd")
        lfa = words(base, "LICENSE_FLAGS_ACCEPTED")
        check("commercial_gstreamer1.0-libav" in lfa and "commercial" not in lfa,
              "LICENSE_FLAGS_ACCEPTED accepts libav narrowly", " ".join(lfa))

        # BBFILES as the layer declares it.
        bbfiles = []
        for pattern in words(base, "BBFILES"):
            bbfiles += sorted(glob.glob(pattern))
        names = sorted(os.path.relpath(f, LAYER) for f in bbfiles)
        check(names == ["recipes-core/images/phare-image.bb",
                        "recipes-phare/phare-image-support/phare-image-support_git.bb",
                        "recipes-phare/phare-player/phare-player_git.bb"],
              "BBFILES finds the three recipes", ", ".join(names))

        recipes = {}
        for fn in bbfiles:
            try:
                recipes[os.path.basename(fn)] = parse_recipe(base, fn)
                check(True, f"{os.path.relpath(fn, LAYER)} parses")
            except Exception as e:
                check(False, f"{os.path.relpath(fn, LAYER)} parses", f"{type(e).__name__}: {e}")
        if len(recipes) != 3:
            return report()

        d = recipes["phare-player_git.bb"]
        check(not d.getVar("__SKIPPED"), "phare-player is not skipped", str(d.getVar("__SKIPPED")))
        check(d.getVar("PN") == "phare-player", "PN = phare-player", d.getVar("PN"))
        check(d.getVar("PV") == "0.1.0+git", "PV = 0.1.0+git", d.getVar("PV"))
        check(d.getVar("PHARE_SRC_REPO") == str(ROOT), "PHARE_SRC_REPO is this repository",
              d.getVar("PHARE_SRC_REPO"))
        check(d.getVar("SRCREV") == head, "SRCREV is the checkout's HEAD", f"{d.getVar('SRCREV')} vs {head}")
        check(d.getVar("BB_DONT_CACHE") == "1", "BB_DONT_CACHE = 1 while SRCREV follows the checkout")

        dep = words(d, "DEPENDS")
        for want in ("glib-2.0", "gstreamer1.0", "gstreamer1.0-plugins-base", "pkgconfig-native", "rust-native"):
            check(want in dep, f"DEPENDS has {want}", " ".join(dep))
        rdep = words(d, "RDEPENDS:phare-player")
        for want in ("ca-certificates", "gstreamer1.0-plugins-base-meta", "gstreamer1.0-plugins-good-meta",
                     "gstreamer1.0-plugins-bad-meta", "gstreamer1.0-libav"):
            check(want in rdep, f"RDEPENDS:${{PN}} has {want}", " ".join(rdep))

        svc = words(d, "SYSTEMD_SERVICE:phare-player")
        check(svc == ["phare-player.service"], "SYSTEMD_SERVICE:${PN} = phare-player.service", " ".join(svc))
        ua = d.getVar("USERADD_PARAM:phare-player") or ""
        check(" phare" in ua and "--groups video,render,audio" in ua and "--system" in ua,
              "USERADD_PARAM: system user phare in video,render,audio", ua)
        check((d.getVar("GROUPADD_PARAM:phare-player") or "").split() == ["--system", "phare"],
              "GROUPADD_PARAM: system group phare")

        s = d.getVar("S")
        manifest = d.getVar("CARGO_MANIFEST_PATH")
        check(os.path.normpath(manifest) == os.path.join(s, "player", "Cargo.toml")
              and (ROOT / "player/Cargo.toml").is_file(),
              "CARGO_MANIFEST_PATH is ${S}/player/Cargo.toml", manifest)
        flags = d.getVar("CARGO_BUILD_FLAGS")
        check("--frozen" in flags and "--bin phare-player" in flags,
              "CARGO_BUILD_FLAGS: --frozen, --bin phare-player", flags)

        # do_install: the recipe's own, and every file it names exists.
        inst = d.getVar("do_install", False) or ""
        check("cargo_do_install must be overridden" not in (d.getVar("do_install") or "")
              and "phare-player" in inst, "do_install is the recipe's, not cargo's")
        for rel in re.findall(r"\$\{S\}/(\S+)", inst):
            check((ROOT / rel).is_file(), f"do_install's ${{S}}/{rel} exists in the tree")
        files = {u.split("://", 1)[1].split(";")[0] for u in words(d, "SRC_URI") if u.startswith("file://")}
        for name in re.findall(r"\$\{UNPACKDIR\}/(\S+)", inst):
            check(name in files and bool(bb.utils.which(d.getVar("FILESPATH"), name)),
                  f"do_install's ${{UNPACKDIR}}/{name} is in SRC_URI and under files/")

        # LIC_FILES_CHKSUM, computed the way OE-Core's insane class does.
        for entry in words(d, "LIC_FILES_CHKSUM"):
            m = re.match(r"file://([^;]+)(.*)", entry)
            parms = dict(p.split("=", 1) for p in m.group(2).split(";") if "=" in p)
            path = m.group(1)
            src = Path(path) if os.path.isabs(path) else ROOT / path
            begin, end = int(parms.get("beginline", 0)), int(parms.get("endline", 0))
            md5 = hashlib.md5(usedforsecurity=False)
            with open(src, "rb") as f:
                for n, line in enumerate(f, 1):
                    if (not begin or n >= begin) and (not end or n <= end):
                        md5.update(line)
            check(md5.hexdigest() == parms.get("md5"), f"LIC_FILES_CHKSUM md5 of {path} matches the tree",
                  f"have {parms.get('md5')}, tree gives {md5.hexdigest()}")

        # SRC_URI through BitBake's fetcher: URLs parsed, checksums bound.
        src_uri = words(d, "SRC_URI")
        crates = [u for u in src_uri if u.startswith("crate://")]
        lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
        locked = {(p["name"], p["version"]) for p in lock["package"] if p.get("source", "").startswith("registry+")}
        listed = {tuple(u.split(";")[0].split("/")[3:5]) for u in crates}
        check(listed == locked, f"SRC_URI has one crate:// per crates.io package in Cargo.lock ({len(crates)})",
              f"missing {sorted(locked - listed)[:5]}, extra {sorted(listed - locked)[:5]}")
        check(src_uri[0] == f"git://{ROOT};protocol=file;nobranch=1",
              "SRC_URI starts with this repository (git, protocol=file)", src_uri[0])
        d.setVar("BB_NO_NETWORK", "1")
        try:
            fetch = bb.fetch2.Fetch(src_uri, d)
            unbound = []
            for url in crates:
                ud = fetch.ud[url]
                name = ud.parm.get("name")
                want = d.getVarFlag("SRC_URI", f"{name}.sha256sum")
                if ud.type != "crate" or not want or ud.sha256_expected != want:
                    unbound.append(url)
            check(not unbound, "bb.fetch2 takes every crate:// URL and binds its sha256sum",
                  f"{len(unbound)} unbound, e.g. {unbound[:3]}")
            gits = [fetch.ud[u] for u in src_uri if u.startswith("git://")]
            check(len(gits) == 1 and gits[0].revision == head,
                  "bb.fetch2 resolves the git source to SRCREV without network",
                  str([(g.url, g.revision) for g in gits]))
        except Exception as e:
            check(False, "bb.fetch2 accepts SRC_URI", f"{type(e).__name__}: {e}")

        # The appliance's services, shared with the Debian-based image.
        sup = recipes["phare-image-support_git.bb"]
        check(not sup.getVar("__SKIPPED"), "phare-image-support is not skipped", str(sup.getVar("__SKIPPED")))
        check(sup.getVar("SRCREV") == head, "phare-image-support: SRCREV is the checkout's HEAD")
        svc = words(sup, "SYSTEMD_SERVICE:phare-image-support")
        check(svc == ["phare-bundle.service"],
              "phare-image-support: SYSTEMD_SERVICE = phare-bundle.service", " ".join(svc))
        inst = sup.getVar("do_install", False) or ""
        installed = {}
        for src, dst in re.findall(r"install -m \d+ \$\{S\}/(\S+)\s+(?:\\\s+)?(\S+)", inst):
            check((ROOT / src).is_file(), f"phare-image-support installs ${{S}}/{src}, which exists")
            installed[sup.expand(dst).replace(sup.getVar("D"), "")] = src
        deploy = sup.getVar("do_deploy", False) or ""
        for src in re.findall(r"\$\{S\}/(\S+)", deploy):
            check((ROOT / src).is_file(), f"phare-image-support deploys ${{S}}/{src}, which exists")
        for unit in svc:
            src = installed.get(sup.expand("${systemd_system_unitdir}/") + unit)
            check(src is not None, f"phare-image-support installs {unit}")
            if src and (ROOT / src).is_file():
                for exe in re.findall(r"^ExecStart=(\S+)", (ROOT / src).read_text(), re.M):
                    check(exe in installed, f"{unit}'s ExecStart {exe} is installed", str(sorted(installed)))

        # The image.
        img = recipes["phare-image.bb"]
        check(not img.getVar("__SKIPPED"), "phare-image is not skipped", str(img.getVar("__SKIPPED")))
        check(img.getVar("PN") == "phare-image", "PN = phare-image", img.getVar("PN"))
        check("read-only-rootfs" in words(img, "IMAGE_FEATURES"), "IMAGE_FEATURES has read-only-rootfs")
        inst = words(img, "IMAGE_INSTALL")
        for want in ("packagegroup-core-boot", "phare-player", "phare-image-support", "gstreamer1.0-plugins-good-meta",
                     "gstreamer1.0-libav", "kernel-module-vc4", "kernel-module-v3d"):
            check(want in inst, f"IMAGE_INSTALL ({MACHINE}) has {want}", " ".join(inst))
        check("phare-bundle-README.txt;phare/README.txt" in words(img, "IMAGE_BOOT_FILES")
              and "phare-bundle-README.txt" in deploy,
              "the boot partition gets phare/README.txt, deployed by phare-image-support")
        check("phare-image-support:do_deploy" in (img.getVarFlag("do_image_wic", "depends") or ""),
              "do_image_wic depends on phare-image-support:do_deploy")
        wks = img.getVar("WKS_FILE")
        wks_path = LAYER / "files/wic" / wks
        check(wks_path.is_file(), f"WKS_FILE {wks} is in files/wic")
        if wks_path.is_file():
            parts = {}
            for line in wks_path.read_text().splitlines():
                if line.startswith("part "):
                    label = re.search(r"--label (\S+)", line)
                    parts[line.split()[1]] = (label.group(1) if label else None, line)
            check(list(parts) == ["/boot/firmware", "/", "/var/lib/phare"],
                  "the wks lays out /boot/firmware, / and /var/lib/phare", str(list(parts)))
            data = parts.get("/var/lib/phare", (None, ""))[1]
            check("x-systemd.after=var-lib.service" in data,
                  "/var/lib/phare mounts after volatile-binds' /var/lib")
            # The same labels and mount points as the Debian-based image.
            fstab = ROOT / "images/base/etc/fstab"
            if fstab.is_file():
                deb = {l.split()[1]: l.split()[0] for l in fstab.read_text().splitlines()
                       if l.startswith("LABEL=")}
                ours = {mp: f"LABEL={lab}" for mp, (lab, _) in parts.items()}
                check(all(deb.get(mp) == ours[mp] for mp in ours),
                      "the wks labels match images/base/etc/fstab", f"{ours} vs {deb}")

    # Files the recipes install, checked as files.
    toml_path = ROOT / "player/debian/player.toml"
    try:
        cfg = tomllib.loads(toml_path.read_text())
        missing = [k for k in ("device_id", "fleet", "brokers", "root") if k not in cfg]
        check(not missing, "player/debian/player.toml is TOML with the required keys", f"missing {missing}")
    except (OSError, tomllib.TOMLDecodeError) as e:
        check(False, "player/debian/player.toml is TOML", str(e))
    unit = (ROOT / "player/debian/phare-player.service")
    if unit.is_file():
        text = unit.read_text()
        for want in ("Type=notify", "WatchdogSec=", "User=phare", "ExecStart=/usr/bin/phare-player"):
            check(want in text, f"player/debian/phare-player.service has {want}")
    return report()


def report() -> int:
    return summary("bitbake parse")


if __name__ == "__main__":
    sys.exit(main())
