"""The built-in data source: seeded, realistic e-commerce data in the raw layer's shape.

Pure Python (numpy, pandas, pyarrow); no Dagster import.
"""

from clv_platform.datagen.generator import (
    CHANNELS,
    COUNTRIES,
    NON_PRODUCT_CODES,
    TABLES,
    GeneratedData,
    GeneratorConfig,
    ParquetOutput,
    generate,
    iter_tables,
    write_parquet,
)

__all__ = [
    "CHANNELS",
    "COUNTRIES",
    "NON_PRODUCT_CODES",
    "TABLES",
    "GeneratedData",
    "GeneratorConfig",
    "ParquetOutput",
    "generate",
    "iter_tables",
    "write_parquet",
]
