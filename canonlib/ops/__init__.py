"""Running canon unattended: status, doctor, the systemd units, init."""
