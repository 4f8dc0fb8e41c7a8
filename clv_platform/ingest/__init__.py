"""Pure ingestion logic: sources, validation, quarantine, privacy, profiles (no Dagster import)."""
