"""One module per command group: env, function, route; deploy and status at the top."""
