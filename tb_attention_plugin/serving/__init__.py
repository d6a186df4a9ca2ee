"""The TensorBoard plugin.

plugin_loader.py (the entry point, safe to import), attention_plugin.py (thin
HTTP routes), params.py (request parsing), store.py (reading, checking,
decoding and caching stored data), tensor_reads.py and data_calls.py (data
provider calls), lru_cache.py; every route and error is in http_api.md.
"""
