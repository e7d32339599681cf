# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend
# (Suppressed on purpose: the project has no public home page or bug tracker
# yet, no product name in the NVD, and these files exist for the target only.)
SUMMARY = "Phare appliance image: the provisioning bundle"
DESCRIPTION = "The services of the Phare appliance image, shared with the \
               Debian-based image (images/rootfs): the provisioning bundle of \
               the boot partition becomes /etc/phare at every boot."
SECTION = "base"

# LICENSE, PV, SRC_URI, SRCREV and S: the sources of this repository.
require recipes-phare/include/phare-source.inc

inherit deploy systemd

SYSTEMD_SERVICE:${PN} = "phare-bundle.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${nonarch_libdir}/phare-image
    install -m 0755 ${S}/images/rootfs/usr/lib/phare-image/phare-bundle ${D}${nonarch_libdir}/phare-image/phare-bundle

    install -d ${D}${systemd_system_unitdir}/phare-player.service.d
    install -m 0644 ${S}/images/rootfs/etc/systemd/system/phare-bundle.service ${D}${systemd_system_unitdir}/phare-bundle.service
    install -m 0644 ${S}/images/rootfs/etc/systemd/system/phare-player.service.d/image.conf \
        ${D}${systemd_system_unitdir}/phare-player.service.d/image.conf
}

# The card's boot partition gets phare/README.txt, which says what to drop
# there (phare-image adds it to IMAGE_BOOT_FILES).
do_deploy() {
    install -m 0644 ${S}/images/bundle-README.txt ${DEPLOYDIR}/phare-bundle-README.txt
}
addtask deploy after do_install before do_build

FILES:${PN} += "${nonarch_libdir}/phare-image \
                ${systemd_system_unitdir}/phare-player.service.d \
                "

# phare-bundle: cp, find, chown, mount, umount, mountpoint.
RDEPENDS:${PN} = "coreutils \
                  findutils \
                  util-linux-mount \
                  util-linux-mountpoint \
                  util-linux-umount \
                  "
