"""Built-in plugins: each module wires an adapter into the core through gateway.hookspecs."""
