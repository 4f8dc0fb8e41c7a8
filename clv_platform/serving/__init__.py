"""The online scoring API: ``app`` (FastAPI) over ``scoring`` (the live snapshot and model, hot swapped)."""
