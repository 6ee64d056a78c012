"""Infrastructure shared by every app (errors, after-commit side effects, events, money).

Not a Django app and holds no models, so every domain app may import it without a cycle.
"""
