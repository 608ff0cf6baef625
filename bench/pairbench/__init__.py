"""pairbench: pairtund vs OpenSSH ssh / autossh on one private loopback sshd (stdlib only)."""
