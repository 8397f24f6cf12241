"""Pingjia hall gateway: ingest, tagging, storage, forwarding and the admin API."""
