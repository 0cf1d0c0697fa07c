"""The `faasd` commands besides serving: `faasd images`, `faasd doctor`, `faasd install`/`uninstall`.

Each module has ``main(command, args) -> int`` (the exit code); faasd/__main__.py
dispatches on the first argument. They run outside the daemon, in the
foreground, and print for a person.
"""
