#!/usr/bin/python3
"""A live RTSP channel on loopback for the end-to-end tests:
rtsp://127.0.0.1:PORT/live, a moving H.264 test pattern, until killed.

Usage: rtsp-server.py PORT. Prints "ready" once it listens.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball"
    " ! video/x-raw,width=320,height=180,framerate=25/1 ! videoconvert"
    " ! openh264enc gop-size=25 ! h264parse config-interval=-1"
    " ! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/live", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
