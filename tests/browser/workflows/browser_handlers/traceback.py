"""Browser tests (workflows/traceback.yaml): logs a caught exception with its traceback."""

import logging

logger = logging.getLogger(__name__)


def parse_dose(text):
    return int(text)


def lambda_handler(event, context):
    try:
        parse_dose("<b>12 mg</b>")
    except ValueError:
        logger.exception("could not parse the dose")
    return {"parsed": False}
