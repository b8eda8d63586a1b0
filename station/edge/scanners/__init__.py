"""Scanner inputs: serial (pyserial) and stdin in ``serial``, USB-HID keyboard wedges (evdev) in
``hid`` with their layouts in ``keymaps``, and the byte framing both share in ``framing``."""
