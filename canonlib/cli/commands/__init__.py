"""One module per ``canon`` command: ``add_parser(sub)`` declares it, ``cmd_*`` run it."""
