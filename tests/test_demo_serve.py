"""`make demo`'s last stage (demo_models.serve) when the port is taken: it
says so in a sentence with the command to use instead, and exits non-zero."""

import socket

from demo_models import serve


def test_taken_port_is_reported_with_the_make_command_to_use_instead(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = serve.serve(str(tmp_path), port, wait_s=120)
    printed = capsys.readouterr().out
    assert status != 0
    assert "could not bind to port %d" % port in printed
    assert "If port %d is in use, pick another one, e.g. make demo PORT=%d" % (port, port + 1) in printed
    assert "Open http" not in printed
