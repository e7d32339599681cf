# nooelint: oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT
# (Suppressed on purpose: no public bug tracker yet; an image is no product
# in the NVD, its packages are checked one by one.)
SUMMARY = "Phare signage player appliance image"
DESCRIPTION = "A read-only root file system that boots straight into \
               phare-player (systemd), with a persistent data partition for \
               the player's state and content cache."
SECTION = "images"
LICENSE = "MIT"

inherit core-image

# The card is laid out as the Debian-based image's (images/): boot partition
# (firmware, kernel, and the provisioning bundle in phare/), a read-only
# root, and the data partition mounted on /var/lib/phare; see
# files/wic/phare-sdimage.wks and phare-image-support.
IMAGE_FEATURES += "read-only-rootfs"

PHARE_IMAGE_INSTALL = "phare-image-support \
                       phare-player \
                       gstreamer1.0-libav \
                       gstreamer1.0-plugins-bad-meta \
                       gstreamer1.0-plugins-base-meta \
                       gstreamer1.0-plugins-good-meta \
                       "
IMAGE_INSTALL = "packagegroup-core-boot ${PHARE_IMAGE_INSTALL} ${CORE_IMAGE_EXTRA_INSTALL}"

# Raspberry Pi: the KMS display driver (vc4) and the 3D/GL driver (v3d),
# loadable modules in the Raspberry Pi kernel configurations.
IMAGE_INSTALL:append:rpi = " kernel-module-vc4 kernel-module-v3d"

WKS_FILE = "phare-sdimage.wks"
# phare/README.txt on the boot partition: where the provisioning bundle goes.
IMAGE_BOOT_FILES:append = " phare-bundle-README.txt;phare/README.txt"
do_image_wic[depends] += "phare-image-support:do_deploy"
