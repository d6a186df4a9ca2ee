"""The stored format, one fact in one place (docs/FORMAT.md).

metadata.py (plugin name, tag suffixes, roles, kinds, versions, the shapes of
derived tensors), plugin_data.proto and its generated plugin_data_pb2.py,
encoding.py (the maps blob and facts blob layouts), reduction.py (the
reduced form of long maps: how it is made and rebuilt, with its bound) and reader.py (the public
Python reader: read_attention, read_head_metrics, read_probe_images). Both the
writing and the serving side use these; nothing here imports either of them.
"""
