"""Values and rules every part shares: entities, errors, settings, validation.

Owns: the plain values of the registry, faasd's exception tree (each error
knows its HTTP status), the settings read once at start, the input rules.
May use: the standard library only; it imports no other part of faasd.
"""
