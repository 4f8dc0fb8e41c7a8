"""dbt's ``modules`` (the Python modules a Jinja template may use) as sqlfluff sees them."""

import datetime  # noqa: F401 - read by the templates as modules.datetime
import re  # noqa: F401 - read by the templates as modules.re
