"""hwvtep: a Linux box as a hardware VXLAN tunnel endpoint driven over OVSDB."""

__version__ = "0.1.0"
