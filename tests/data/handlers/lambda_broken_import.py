"""A Lambda-style handler whose module cannot be imported: it needs a package that is not
installed."""

import chartflow_no_such_dependency  # noqa: F401


def lambda_handler(event, context):
    return {"never": True}
