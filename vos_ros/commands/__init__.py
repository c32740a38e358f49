"""One module per ``vos-ros`` subcommand (see :mod:`vos_ros.cli`)."""
