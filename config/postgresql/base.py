"""Django's PostgreSQL backend, with a health check that costs no round trip.

A persistent connection is checked before each request uses it (CONN_HEALTH_CHECKS). Django asks the server
(`SELECT 1`): one round trip per request, which costs PostgreSQL about what a small statement does. A
connection that the server ended (a restart, `pg_terminate_backend`, an idle timeout) has told so already: its
socket holds the server's goodbye (or end of file) while an idle, healthy one holds nothing. So the check looks
at the socket without waiting, and asks the server only when something is there. A connection lost without a
word (a network cut) passes the check and fails its first query, as with DB_HEALTH_CHECKS=false, and is then
replaced for the next request.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not self._looks_alive():
            self.close()
        self.health_check_done = True

    def _looks_alive(self) -> bool:
        pgconn = self.connection.pgconn
        if self.connection.closed or pgconn.status != pq.ConnStatus.OK:
            return False
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or self.is_usable()  # something came while idle: ask the server
