"""Pingjia simulator: virtual evaluators, the hall's outside systems as stand-ins, scenarios."""
