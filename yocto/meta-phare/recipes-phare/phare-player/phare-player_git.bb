# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend
# (Suppressed on purpose: the project has no public home page or bug tracker
# yet, no product name in the NVD, and the daemon exists for the target only.)
SUMMARY = "Phare signage player daemon"
DESCRIPTION = "phare-player pulls signed playlists over MQTT, caches every \
               asset locally and renders scheduled or live video with GStreamer."
SECTION = "multimedia"

# Linked through the gstreamer-rs -sys crates (pkg-config at build time).
DEPENDS = "glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base"

# LICENSE, PV, SRC_URI, SRCREV and S: the sources of this repository.
require recipes-phare/include/phare-source.inc
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# The player is one member of a cargo workspace: build it from its own
# manifest (cargo finds the workspace and its Cargo.lock above it), binary only.
CARGO_SRC_DIR = "player"
CARGO_BUILD_FLAGS:append = " --bin phare-player"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system phare"
USERADD_PARAM:${PN} = "--system --gid phare --groups video,render,audio \
                       --home-dir ${localstatedir}/lib/phare --no-create-home \
                       --shell ${base_sbindir}/nologin phare"

SYSTEMD_SERVICE:${PN} = "phare-player.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The unit, the default configuration and the tmpfiles.d entry are the ones
# the Debian package ships (player/debian/): one copy for every packaging.
do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/phare-player ${D}${bindir}/phare-player

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/player/debian/phare-player.service ${D}${systemd_system_unitdir}/phare-player.service
    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/player/debian/phare-player.tmpfile ${D}${nonarch_libdir}/tmpfiles.d/phare-player.conf

    install -d -m 0750 -g phare ${D}${sysconfdir}/phare
    install -m 0640 -g phare ${S}/player/debian/player.toml ${D}${sysconfdir}/phare/player.toml
    install -d -m 0750 -o phare -g phare ${D}${localstatedir}/lib/phare
}

FILES:${PN} += "${nonarch_libdir}/tmpfiles.d/phare-player.conf \
                ${localstatedir}/lib/phare \
                "
CONFFILES:${PN} = "${sysconfdir}/phare/player.toml"

# Elements made by name at run time: playback, convert, scale, rate, app
# (base); imagefreeze, videoflip, autodetect, demuxers, image decoders (good);
# kmssink, waylandsink, HLS/DASH, V4L2 stateless decoders (bad); software
# decoders (libav). TLS roots for MQTT and HTTPS: ca-certificates.
RDEPENDS:${PN} = "ca-certificates \
                  gstreamer1.0-libav \
                  gstreamer1.0-plugins-bad-meta \
                  gstreamer1.0-plugins-base-meta \
                  gstreamer1.0-plugins-good-meta \
                  "
