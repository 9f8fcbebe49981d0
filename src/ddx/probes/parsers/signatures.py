"""Error signatures of log lines: one table, each entry naming its finding.

A signature is a case-insensitive regex over one log line. To keep the false
positive rate low on an ordinary syslog, each entry may also carry:

- ``needs_level``: the phrase alone is ambiguous ("timeout", "too large",
  "Connection reset by peer" from clients that simply went away), so the line
  must also say it reports a problem: a level word (error, warning, crit,
  fatal, FAILED...), an exception class name (``ConnectionResetError``,
  ``SocketException``) or a failure phrase (could not, unable to, cannot),
  and must not say it is informational (``[info]``, ``INFO``, ``[notice]``,
  PostgreSQL's ``LOG:``: where programs log what they handled, such as
  clients that went away or sessions that expired);
- ``unless``: lines that look alike but mean something else (``Permission
  denied (publickey)`` is a refused ssh login, not a file that cannot be
  written; ``list index out of range`` is not a database integer overflow;
  the kernel OOM killer line belongs to ``memory.oom_kill``);
- ``min_count``: how many lines in the window it takes to count, for messages
  that a healthy internet-facing host also logs now and then.

Lines that say they are debug or trace output never count: debug logs
mention errors that were handled.

The network-related signatures ignore ``sshd`` entirely: on a host reachable
from the internet, sshd logs scanners resetting connections, timing out
before authentication and failing reverse lookups all day long, and none of
that tells anything about the services ddx diagnoses.

Linux errno numbers used below: EIO 5, EAGAIN 11, ENOMEM 12, EACCES 13,
ENFILE 23, EMFILE 24, ENOSPC 28, EPIPE 32, ECONNRESET 104, ETIMEDOUT 110,
ECONNREFUSED 111. Messages nearly always carry the errno's text next to its
number, so the text is what is matched.

Speed: Python's regex engine needs hundreds of microseconds a line for the
whole table, so each signature lists ``keywords`` (lowercase literals, one of
which every line it matches contains; the tests check this on every sample)
and only the lines holding a keyword are matched: about 0.1 s per MiB of log.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = [
    "SIGNATURES",
    "Signature",
    "candidate_lines",
    "is_debug",
    "is_low_level",
    "match_line",
    "says_problem",
    "signature_findings",
]

_I = re.IGNORECASE


@dataclass(frozen=True)
class Signature:
    """One error signature: a pattern, the finding it supports, and why."""

    name: str
    finding: str
    pattern: re.Pattern[str]
    comment: str
    needs_level: bool = False
    unless: re.Pattern[str] | None = None
    min_count: int = 1
    keywords: tuple[str, ...] = ()  # lowercase literals, one of which every matching line contains

    def matches(self, line: str) -> bool:
        """Whether this one line counts for the signature (debug lines never do)."""
        if self.pattern.search(line) is None:
            return False
        if self.unless is not None and self.unless.search(line) is not None:
            return False
        if self.needs_level and (is_low_level(line) or not says_problem(line)):
            return False
        return not is_debug(line)


def _sig(name: str, finding: str, pattern: str, comment: str, *, keywords: tuple[str, ...],
         needs_level: bool = False, unless: str | None = None, min_count: int = 1) -> Signature:
    return Signature(name, finding, re.compile(pattern, _I), comment, needs_level,
                     re.compile(unless, _I) if unless else None, min_count, keywords)


# sshd's chatter with internet scanners (see the module docstring).
_SSHD = r"\bsshd\S*:"
# The kernel's own OOM-killer report is memory.oom_kill, not a program's failed allocation.
_KERNEL_OOM = (r"oom-kill|oom_reaper|invoked oom-killer|Out of memory: Kill|Memory cgroup out of memory"
               r"|oom_kill_process|Killed process \d+")

SIGNATURES: tuple[Signature, ...] = (
    # --- storage --------------------------------------------------------------------------
    _sig("enospc", "logs.enospc",
         r"No space left on device|\bENOSPC\b|Errcode: 28\b|\bdisk (?:is )?full\b",
         "ENOSPC from any program (Python OSError, nginx/Apache '(28: ...)', MySQL 'Errcode: 28', "
         "Go/Node/Java messages); MySQL/MariaDB 'Disk is full writing'. Unambiguous.",
         keywords=("no space left", "enospc", "errcode: 28", "disk full", "disk is full")),
    _sig("eio", "logs.io_errors",
         r"Input/output error|\bEIO\b",
         "EIO as a program sees it. The kernel's own block-layer lines ('I/O error, dev sda', "
         "'Buffer I/O error') are disk.io_errors and are left to the kernel-log probe.",
         unless=r"\bkernel:|blk_update_request|Buffer I/O error|^\[\s*\d+\.\d+\]",
         keywords=("input/output error", "eio")),
    # --- permissions --------------------------------------------------------------------
    _sig("eacces", "logs.permission_denied",
         r"Permission denied|\bEACCES\b|could not write to cache|Unable to write in the .{0,200}directory"
         r"|Failed to write cache file|\bis not writable\b|failed to open stream: Permission|Access is denied",
         "A file or directory that cannot be read or written: EACCES (nginx '(13: Permission denied)', "
         "Python PermissionError, PHP 'failed to open stream'), framework cache/storage messages "
         "('is not writable', 'Unable to write in the cache directory'). Not ssh logins refused "
         "('Permission denied (publickey)') nor SQL privileges ('permission denied for table').",
         unless=r"Permission denied \((?:publickey|password|keyboard|gssapi|hostbased|none)|"
                r"permission denied for (?:table|relation|schema|database|sequence|function|view|column|"
                r"tablespace|language|type|foreign|large object|parameter|procedure|routine)|" + _SSHD,
         keywords=("permission denied", "eacces", "could not write to cache", "unable to write in the",
                   "failed to write cache file", "is not writable", "failed to open stream: permission",
                   "access is denied")),
    # --- descriptors, processes, memory -------------------------------------------------
    _sig("emfile", "logs.too_many_open_files",
         r"Too many open files|\bE[MN]FILE\b|file-max limit \d+ reached|file table overflow",
         "EMFILE (per-process RLIMIT_NOFILE) and ENFILE (system-wide file-max): 'Too many open files', "
         "'Too many open files in system', nginx 'accept4() failed (24: ...)', the kernel's "
         "'VFS: file-max limit N reached'. Unambiguous.",
         keywords=("too many open files", "emfile", "enfile", "file-max limit", "file table overflow")),
    _sig("fork", "procs.fork_failures",
         r"fork: (?:retry: )?(?:Resource temporarily unavailable|Cannot allocate memory)|\bcannot fork\b"
         r"|\bcould not fork\b|\bunable to fork\b|\bfailed to fork\b|\bfork(?:\(\))? failed\b|can'?t start new thread"
         r"|can'?t create (?:a new )?thread|unable to create new native thread|failed to create new OS thread"
         r"|pthread_create(?:\(\))? failed|\bclone(?:\(\))? failed"
         r"|(?:fork|clone|thread)\w*\W[^\n]{0,80}Resource temporarily unavailable",
         "New processes or threads cannot be created: bash 'fork: retry: Resource temporarily unavailable', "
         "nginx 'fork() failed', Apache 'AH00159: fork: Unable to fork new process', PostgreSQL "
         "'could not fork new process', Python 'can't start new thread', Java 'unable to create new native "
         "thread', Go 'failed to create new OS thread', Ruby 'can't create Thread'. A bare 'Resource "
         "temporarily unavailable' is EAGAIN on a non-blocking socket (nginx recv()) and does not count.",
         keywords=("fork", "start new thread", "create thread", "create a new thread", "native thread",
                   "os thread", "pthread_create", "clone", "resource temporarily unavailable")),
    _sig("enomem", "logs.out_of_memory",
         r"Cannot allocate memory|\bENOMEM\b|\bMemoryError\b|\bOutOfMemoryError\b|\bout of memory\b"
         r"|failed to allocate|Allowed memory size of \d+ bytes exhausted|memory allocation (?:of \d+ bytes )?failed"
         r"|std::bad_alloc|\bOOM command not allowed|JavaScript heap out of memory|\bCannot allocate \d+ bytes"
         r"|\bunable to allocate (?:memory|\d+)|could not allocate memory",
         "A program's allocation failed: ENOMEM, Python MemoryError, Java OutOfMemoryError, PHP 'Allowed "
         "memory size ... exhausted', C++ bad_alloc, Go 'runtime: out of memory', Node 'JavaScript heap out "
         "of memory', Redis 'OOM command not allowed', PostgreSQL 'out of memory'. Not the kernel's "
         "OOM-killer report (memory.oom_kill) and not Java's 'unable to create new native thread' "
         "(a thread limit: procs.fork_failures). JVM flags such as -XX:+HeapDumpOnOutOfMemoryError do "
         "not match (no word boundary).",
         unless=_KERNEL_OOM + r"|unable to create new native thread",
         keywords=("allocate", "enomem", "memoryerror", "out of memory", "outofmemoryerror", "memory size",
                   "memory allocation", "bad_alloc", "oom command")),
    # --- network ------------------------------------------------------------------------
    _sig("epipe", "logs.broken_pipe",
         r"Broken pipe|\bEPIPE\b|BrokenPipeError",
         "EPIPE writing to a peer that closed: 'Broken pipe', Python BrokenPipeError, Node 'write EPIPE', "
         "Java 'IOException: Broken pipe'. Not sshd's client chatter ('Write failed: Broken pipe').",
         unless=_SSHD,
         keywords=("broken pipe", "epipe", "brokenpipe")),
    _sig("econnrefused", "logs.connection_refused",
         r"Connection refused|\bECONNREFUSED\b|ConnectionRefusedError|connect\(\) failed \(111",
         "A dependency refuses connections: 'Connection refused' (nginx 'connect() failed (111: ...) while "
         "connecting to upstream', Java ConnectException, Python ConnectionRefusedError, Node ECONNREFUSED, "
         "libpq 'could not connect to server: Connection refused'). Not sshd.",
         unless=_SSHD,
         keywords=("connection refused", "econnrefused", "connectionrefused", "connect() failed (111")),
    _sig("eaddrnotavail", "logs.addr_not_available",
         r"Cannot assign requested address|\bEADDRNOTAVAIL\b|\[Errno 99\]|connect\(\) failed \(99\b",
         "An outgoing connection with no local port (or address) left to use: errno 99 'Cannot assign "
         "requested address' (nginx 'connect() failed (99: ...) while connecting to upstream', Java "
         "NoRouteToHostException, Python '[Errno 99]', Node EADDRNOTAVAIL, redis-py 'Error 99 connecting'). "
         "Not a server that cannot bind an address it does not have ('bind() to 10.0.0.5:80 failed (99: "
         "...)', Java BindException): that is its configuration, not its ports.",
         unless=r"\bbind\b|BindException|\blisten",
         keywords=("cannot assign requested address", "eaddrnotavail", "errno 99", "failed (99")),
    _sig("timed_out", "logs.timeouts",
         r"\btimed out\b|\bETIMEDOUT\b|deadline exceeded|\bTimeoutError\b|SocketTimeoutException"
         r"|\bTimeoutException\b|\bWORKER TIMEOUT\b|\b(?:Read|Connect|Connection|Pool)Timeout(?:Error)?\b",
         "Something took too long and was given up on: nginx 'upstream timed out (110: Connection timed "
         "out)', 'Connection timed out', Python TimeoutError / requests ReadTimeout, Java "
         "SocketTimeoutException, gRPC 'context deadline exceeded', gunicorn 'WORKER TIMEOUT', systemd "
         "'Job ... timed out'. The past tense says it happened. "
         "Lock and statement timeouts are logs.lock_timeouts; sshd's 'Timeout before authentication' "
         "and 'Connection timed out during banner exchange' are scanners.",
         unless=_SSHD + r"|lock wait timeout|lock timeout|lock request time out",
         keywords=("timed out", "timedout", "deadline exceeded", "timeouterror", "timeoutexception",
                   "worker timeout", "readtimeout", "connecttimeout", "connectiontimeout", "pooltimeout")),
    _sig("timeout", "logs.timeouts",
         r"\btime-?out\b(?!\s*[=:]\s*\d)",
         "The bare word 'timeout' ('redis timeout after 5 s', 'ERROR upstream timeout'). It is common in "
         "settings and config dumps ('timeout=30', 'proxy_read_timeout 60s', 'timeout 30s'), so the line "
         "must say it is a problem, and settings phrasing does not count.",
         needs_level=True,
         unless=_SSHD + r"|lock wait timeout|lock timeout|lock request time out|\btimeout (?:is|set to)\s+\d"
                r"|\(timeout \d",
         keywords=("timeout", "time-out")),
    _sig("econnreset", "net.connection_resets",
         r"Connection reset by peer|Software caused connection abort|\bECONNRESET\b|ConnectionResetError"
         r"|ConnectionAbortedError|\bConnection reset\b|\bconnection was reset\b|\bECONNABORTED\b",
         "Connections reset or aborted: 'Connection reset by peer' (nginx 'recv() failed (104: ...) while "
         "reading response header from upstream', Python ConnectionResetError, Java 'SocketException: "
         "Connection reset', Node ECONNRESET, 'Software caused connection abort'). Clients that go away "
         "are normal (nginx logs those at info level), so the line must say it is a problem, and it takes "
         "3 such lines in the window; sshd's scanners never count.",
         needs_level=True, unless=_SSHD, min_count=3,
         keywords=("connection reset", "connection abort", "econnreset", "connectionreset",
                   "connectionaborted", "connection was reset", "econnaborted")),
    _sig("dns", "logs.dns_errors",
         r"Name or service not known|Temporary failure in name resolution|getaddrinfo(?:\(\))? failed"
         r"|getaddrinfo ENOTFOUND|getaddrinfo EAI_AGAIN|\bEAI_(?:AGAIN|NONAME|FAIL)\b|Could not resolve host"
         r"|could not be resolved|UnknownHostException|\bno such host\b|nodename nor servname provided"
         r"|Name does not resolve|could not translate host name|server misbehaving|Host name lookup failure"
         r"|\bgaierror\b|\bresolver error",
         "Name resolution failed: glibc 'Temporary failure in name resolution' / 'Name or service not known', "
         "curl 'Could not resolve host', nginx 'could not be resolved (2: Server failure)', Java "
         "UnknownHostException, Go 'no such host' / 'server misbehaving', Node 'getaddrinfo ENOTFOUND', "
         "libpq 'could not translate host name', Python socket.gaierror. sshd's reverse-lookup warnings "
         "about scanners and postfix's 'does not resolve to address' (a client's reverse DNS) are not "
         "lookups of the services' own dependencies.",
         unless=_SSHD + r"|does not resolve to address|reverse mapping checking|POSSIBLE BREAK-IN",
         keywords=("name or service not known", "name resolution", "getaddrinfo", "eai_", "could not resolve",
                   "could not be resolved", "unknownhost", "no such host", "nodename nor servname",
                   "does not resolve", "could not translate host name", "server misbehaving",
                   "host name lookup", "gaierror", "resolver error")),
    _sig("dns_rcode", "logs.dns_errors",
         r"\bNXDOMAIN\b|\bSERVFAIL\b|\bunknown host\b|\bfailed to resolve\b|\bDNS (?:lookup|resolution) failed",
         "DNS answer codes and loose wording: NXDOMAIN and SERVFAIL also fill resolver query logs "
         "(dnsmasq log-queries, unbound), so the line must say it is a problem.",
         needs_level=True,
         unless=_SSHD + r"|does not resolve to address",
         keywords=("nxdomain", "servfail", "unknown host", "failed to resolve", "dns lookup", "dns resolution")),
    _sig("tls", "logs.tls_errors",
         r"certificate has expired|certificate verify failed|CERTIFICATE_VERIFY_FAILED|x509: certificate"
         r"|unable to get local issuer certificate|self[- ]signed certificate|certificate is not yet valid"
         r"|PKIX path building failed|SSLHandshakeException|unable to verify the first certificate"
         r"|certificate (?:has )?(?:expired|been revoked)|\bCERT_HAS_EXPIRED\b|tlsv1 alert (?:unknown ca|"
         r"certificate expired|bad certificate|decrypt error)|sslv3 alert (?:certificate expired|bad certificate)",
         "Certificate problems a TLS client or server reports: OpenSSL 'certificate verify failed' / "
         "'certificate has expired', Python CERTIFICATE_VERIFY_FAILED, Go 'x509: certificate has expired "
         "or is not yet valid', Java 'PKIX path building failed' / SSLHandshakeException, Node "
         "CERT_HAS_EXPIRED, peers' alerts 'tlsv1 alert unknown ca'. Unambiguous.",
         keywords=("certificate", "x509", "pkix", "sslhandshakeexception", "cert_has_expired", "tlsv1 alert",
                   "sslv3 alert")),
    _sig("tls_handshake", "logs.tls_errors",
         r"SSL_do_handshake\(\) failed|\bSSL routines\b|\bhandshake failure\b|TLS handshake error"
         r"|\bno shared cipher\b|SSL_accept\(\) failed|SSL_connect\(\) failed",
         "Handshake failures without a certificate reason: nginx 'SSL_do_handshake() failed', OpenSSL "
         "'SSL routines', Go 'http: TLS handshake error'. Scanners and old clients cause a few of these "
         "on any public HTTPS server, so it takes 5 in the window, and the line must say it is a problem.",
         needs_level=True, min_count=5,
         keywords=("ssl_do_handshake", "ssl routines", "handshake failure", "tls handshake error",
                   "no shared cipher", "ssl_accept", "ssl_connect")),
    _sig("auth_failed", "logs.auth_failures",
         r"invalid[ _-]?api[ _-]?key|api[ _-]?key (?:is )?(?:invalid|expired|revoked)|\bExpiredToken(?:Exception)?\b"
         r"|(?:access|security|auth|bearer|id) ?token (?:has |is )?expired|token_expired|\binvalid_client\b"
         r"|\binvalid_grant\b|client secret (?:keys? )?(?:for .{0,80})?(?:has |have |is |are )?expired|AADSTS7000222"
         r"|InvalidClientTokenId|UnrecognizedClientException|AuthFailure|\b401 Unauthorized\b"
         r"|credentials? (?:have |has )?expired|password (?:has )?expired|authentication failed for (?:api|service)",
         "A program's own credentials for a service it calls are refused: an API key, an OAuth client secret "
         "('AADSTS7000222: The provided client secret keys are expired', invalid_client, invalid_grant), a "
         "cloud token ('ExpiredToken', InvalidClientTokenId), '401 Unauthorized' from an upstream. People "
         "typing wrong passwords are not this: the line must say it is a problem, and it takes 3.",
         needs_level=True, min_count=3, unless=_SSHD + r"|\bpam_unix\b|\bsudo\b|\bsu\b\[",
         keywords=("api key", "apikey", "api_key", "api-key", "expiredtoken", "token", "invalid_client",
                   "invalid_grant", "client secret", "aadsts7000222", "invalidclienttokenid",
                   "unrecognizedclientexception", "authfailure", "401 unauthorized", "credential",
                   "password", "authentication failed for")),
    _sig("rate_limited", "logs.rate_limited",
         r"\b429 Too Many Requests\b|\bToo Many Requests\b|rate[ -]?limit(?:ed| exceeded| reached)"
         r"|\bThrottlingException\b|\bThrottled\b|\bSlowDown\b|RequestLimitExceeded|quota (?:exceeded|exhausted)"
         r"|\bRESOURCE_EXHAUSTED\b|exceeded (?:the |your )?(?:rate|request|api) (?:limit|quota)",
         "A service this host calls refuses for rate or quota: HTTP 429, AWS ThrottlingException / SlowDown / "
         "RequestLimitExceeded, gRPC RESOURCE_EXHAUSTED, 'rate limit exceeded', 'quota exceeded'. It takes 3.",
         min_count=3, unless=_SSHD,
         keywords=("too many requests", "rate limit", "ratelimit", "rate-limit", "throttlingexception", "throttled",
                   "slowdown", "requestlimitexceeded", "quota", "resource_exhausted", "exceeded")),
    _sig("gc_pause", "logs.gc_pauses",
         r"\bPause Full\b|\bFull GC\b|\[Full GC|GC overhead limit exceeded|stop-the-world|\bSTW\b pause"
         r"|JvmPauseMonitor|Detected pause in JVM or host machine|GC pause|\bgc \d+ @[\d.]+s \d+%:",
         "A runtime stopping the world to collect garbage: JVM 'Pause Full' / 'Full GC', Hadoop's "
         "JvmPauseMonitor 'Detected pause in JVM or host machine', Elasticsearch/Cassandra 'GC pause', "
         "'GC overhead limit exceeded', Go's gctrace lines. A JVM logs a full collection now and then when "
         "healthy: it takes 5.",
         min_count=5,
         keywords=("pause full", "full gc", "gc overhead limit", "stop-the-world", "stw", "jvmpausemonitor",
                   "detected pause in jvm", "gc pause", "gc ")),
    _sig("clock", "logs.clock_errors",
         r"\bnot yet valid\b|\bnot valid yet\b|ImmatureSignatureError|NotBeforeError|jwt not active"
         r"|PrematureJwtException|token used too early|used before (?:it was )?issued|issued in the future"
         r"|RequestTimeTooSkewed|Signature not yet current|clock skew (?:detected|too great|is too large)"
         r"|clock (?:is )?(?:skewed|out of sync)|clock difference\b.{0,80}\btoo (?:high|large)"
         r"|time (?:is )?out of sync|timestamp\b.{0,60}\b(?:outside|in the future|too far|too old|skew)"
         r"|(?:outside|beyond) (?:of )?the allowed (?:time )?window|System clock wrong by",
         "Code that checks time and finds the clock wrong: tokens and certificates 'not yet valid' (PyJWT "
         "ImmatureSignatureError, jsonwebtoken NotBeforeError 'jwt not active', jjwt PrematureJwtException, "
         "Go x509 'is not yet valid'), 'Token used too early', AWS 'RequestTimeTooSkewed' / 'Signature not "
         "yet current', Kerberos 'Clock skew too great', Ceph/etcd 'clock skew detected' / 'clock difference "
         "... too high', request timestamps 'outside the allowed window', chronyd 'System clock wrong by'. "
         "It takes 2.",
         min_count=2, unless=_SSHD,
         keywords=("not yet valid", "not valid yet", "immaturesignatureerror", "notbeforeerror", "jwt not active",
                   "prematurejwtexception", "too early", "used before", "in the future", "requesttimetooskewed",
                   "not yet current", "clock", "out of sync", "timestamp", "allowed")),
    _sig("request_too_large", "logs.request_too_large",
         r"client intended to send too large|Request Entity Too Large|Payload Too Large|PayloadTooLargeError"
         r"|too large body|Request Header Fields Too Large|Request-URI Too (?:Long|Large)|URI too long"
         r"|client sent too long|request header or cookie too large|object too large for cache"
         r"|Packet for query is too large|bigger than 'max_allowed_packet'|exceeds the limit of \d+ bytes"
         r"|exceeds server limit|is larger than the configured limit|maxContentLength size of -?\d+ exceeded"
         r"|larger than maxBodyLength|too big inline request|too big (?:mbulk|bulk) count",
         "A request, command or value exceeded a size limit, in the words of the program that refused it: "
         "nginx 'client intended to send too large body' / 'client sent too long URI' (nginx logs the "
         "latter at info level: still a refused request), Apache 'URI too long' / 'Size of a request "
         "header field exceeds server limit' / 'is larger than the configured limit', PHP 'POST "
         "Content-Length of N bytes exceeds the limit of M bytes', memcached 'SERVER_ERROR object too "
         "large for cache', MySQL max_allowed_packet, Redis 'too big inline request', Node "
         "PayloadTooLargeError, axios maxContentLength. Unambiguous.",
         keywords=("too large", "too long", "too big", "payloadtoolarge", "exceeds the limit of",
                   "exceeds server limit", "configured limit", "maxcontentlength", "maxbodylength",
                   "max_allowed_packet")),
    _sig("too_large", "logs.request_too_large",
         r"\btoo (?:large|big|long)\b",
         "The bare words 'too large/big/long' ('upload rejected: file too large'): the line must say it is "
         "a problem, and errno texts ('File name too long', 'Argument list too long', 'Value too large "
         "for defined data type') are not request sizes.",
         needs_level=True,
         unless=r"file name too long|argument list too long|path(?:name)? too long|name too long"
                r"|value too large for defined data type|\bE(?:2BIG|NAMETOOLONG|OVERFLOW)\b",
         keywords=("too large", "too big", "too long")),
    # --- databases ----------------------------------------------------------------------
    _sig("int_range", "logs.integer_out_of_range",
         r"\b(?:small|big)?int(?:eger)? out of range|reached maximum value of sequence|Out of range value for column"
         r"|Duplicate entry '(?:127|255|32767|65535|8388607|16777215|2147483647|4294967295|9223372036854775807"
         r"|18446744073709551615)'|Failed to read auto-increment value from storage engine"
         r"|is out of range for ActiveModel::Type::Integer|\bint(?:32|64)? overflow\b|\binteger overflow\b"
         r"|numeric value out of range",
         "A value or id overflowed its column or sequence: PostgreSQL 'integer out of range' / 'nextval: "
         "reached maximum value of sequence', MySQL 'Out of range value for column' and 'Duplicate entry "
         "'2147483647'' (an auto-increment stuck at its type's maximum), Rails ActiveModel::RangeError. "
         "Not 'list index out of range' (a Python bug, not a database limit).",
         unless=r"index out of range|slice bounds out of range",
         keywords=("out of range", "maximum value of sequence", "duplicate entry", "auto-increment",
                   "overflow")),
    _sig("db_conns", "logs.too_many_db_connections",
         r"sorry, too many clients already|\bToo many connections\b|remaining connection slots are reserved"
         r"|too many connections for (?:role|database|user)|ER_CON_COUNT_ERROR|max number of clients reached"
         r"|no more connections allowed|max_user_connections|connection pool exhausted"
         r"|too many open connections",
         "A database refuses new connections at its limit: PostgreSQL 'sorry, too many clients already' / "
         "'remaining connection slots are reserved', MySQL 'Too many connections' (1040) and "
         "max_user_connections, Redis 'max number of clients reached', PgBouncer 'no more connections "
         "allowed (max_client_conn)', MongoDB 'too many open connections'. Not postfix's per-client "
         "'too many connections from HOST'.",
         unless=r"too many connections from\b",
         keywords=("too many clients", "too many connections", "connection slots are reserved",
                   "er_con_count_error", "max number of clients", "no more connections allowed",
                   "max_user_connections", "connection pool exhausted", "too many open connections")),
    _sig("lock_timeout", "logs.lock_timeouts",
         r"Lock wait timeout exceeded|deadlock detected|Deadlock found when trying to get lock"
         r"|canceling statement due to lock timeout|could not obtain lock|\bdatabase is locked\b|\bSQLITE_BUSY\b"
         r"|Lock request time out period exceeded|\bLockTimeout|\block timeout\b(?!\s*[=:]\s*\d)|ORA-00060"
         r"|lock_timeout\b.{0,40}exceeded|\bLockAcquisitionException\b|\bDeadlockLoserDataAccessException\b"
         r"|still waiting for \w*Lock on|\bacquired \w*Lock on .{0,120} after \d",
         "Queries wait on locks until they give up, or deadlock: MySQL 'Lock wait timeout exceeded' / "
         "'Deadlock found', PostgreSQL 'deadlock detected' / 'canceling statement due to lock timeout' / "
         "'could not obtain lock', SQLite 'database is locked', SQL Server 'Lock request time out period "
         "exceeded', Oracle ORA-00060; and PostgreSQL's log_lock_waits reports of a session that waited "
         "longer than deadlock_timeout ('process 42 still waiting for AccessExclusiveLock on relation ...', "
         "'acquired ShareLock on transaction ... after 5003 ms'), at LOG level. Settings such as "
         "'deadlock_timeout = 1s' do not match.",
         keywords=("lock wait timeout", "deadlock", "lock timeout", "could not obtain lock",
                   "database is locked", "sqlite_busy", "lock request time out", "locktimeout", "ora-00060",
                   "lock_timeout", "lockacquisitionexception", "still waiting for", "lock on")),
    _sig("readonly_db", "logs.readonly_database",
         r"in a read-only transaction|running with the --(?:super-)?read-only option|recovery is in progress"
         r"|the database system is in recovery mode|attempt to write a readonly database"
         r"|READONLY You can'?t write against a read only|\bNotWritablePrimary\b|not master and slaveOk=false"
         r"|database is read-only|database is in read-only mode|ER_OPTION_PREVENTS_STATEMENT"
         r"|hot standby mode is disabled|is read-only because",
         "Writes rejected by a read-only or recovering database: PostgreSQL 'cannot execute INSERT in a "
         "read-only transaction' / 'recovery is in progress', MySQL '--read-only option', SQLite 'attempt "
         "to write a readonly database', Redis 'READONLY You can't write against a read only replica', "
         "MongoDB NotWritablePrimary. A 'Read-only file system' (EROFS) is a disk problem and does not "
         "match here.",
         keywords=("read-only", "recovery is in progress", "recovery mode", "readonly", "read only",
                   "notwritableprimary", "slaveok", "er_option_prevents_statement", "hot standby")),
    # --- code ---------------------------------------------------------------------------
    _sig("missing_code", "logs.missing_code",
         r"\bModuleNotFoundError\b|No module named\b|\bImportError: cannot import name"
         r"|\bcannot load such file\b|\buninitialized constant\b|\bundefined method\b"
         r"|\bundefined symbol\b|error while loading shared libraries|cannot open shared object file"
         r"|\bClass ['\"]?[\w\\]{1,200}['\"]? not found|Call to undefined (?:function|method)"
         r"|\bClassNotFoundException\b|\bNoClassDefFoundError\b|\bNoSuchMethodError\b|\bUnsatisfiedLinkError\b"
         r"|\bCannot find module\b|\bERR_MODULE_NOT_FOUND\b|Can't locate \S+\.pm in @INC",
         "Code or a library fails to load, or does not match what calls it: the release shipped without a "
         "module or against the wrong version. Python 'ModuleNotFoundError' / 'No module named' / 'cannot "
         "import name', Ruby 'cannot load such file' / 'uninitialized constant' / 'undefined method', the "
         "dynamic linker's 'undefined symbol' / 'error while loading shared libraries', PHP 'Class \"X\" not "
         "found' / 'Call to undefined function', Java ClassNotFoundException / NoClassDefFoundError / "
         "NoSuchMethodError / UnsatisfiedLinkError, Node 'Cannot find module', Perl 'Can't locate X.pm in "
         "@INC'. Not Ruby's everyday nil bug ('undefined method ... for nil').",
         unless=r"undefined method .{0,200}\bfor nil\b",
         keywords=("modulenotfounderror", "no module named", "cannot import name", "cannot load such file",
                   "uninitialized constant", "undefined method", "undefined symbol", "shared libraries",
                   "shared object file", "not found", "call to undefined", "classnotfoundexception",
                   "noclassdeffounderror", "nosuchmethoderror", "unsatisfiedlinkerror", "cannot find module",
                   "err_module_not_found", "in @inc")),
    # --- servers ------------------------------------------------------------------------
    _sig("worker_limit", "logs.worker_limit_reached",
         r"server reached MaxRequestWorkers|server reached MaxClients|worker_connections are not enough"
         r"|\bseems busy\b|reached (?:the )?(?:pm\.)?max_children|max_children setting|listen queue overflow"
         r"|\bNo free workers\b|listen queue of socket .{0,80} full|All threads \(\d+\) are currently busy"
         r"|Request queue is full|queue full|\bmaxconn\b.{0,40}reached|all workers are busy"
         r"|no (?:idle|available) workers?|reached the maximum number of (?:worker|thread|process)",
         "A server hit its worker or connection limit: Apache 'server reached MaxRequestWorkers setting' "
         "(MaxClients before 2.4), nginx 'worker_connections are not enough', PHP-FPM '[pool www] seems "
         "busy' / 'server reached pm.max_children setting', uWSGI 'listen queue of socket ... full', "
         "Tomcat 'All threads (200) are currently busy', Passenger 'Request queue is full', the BSD "
         "kernel's 'Listen queue overflow'. Unambiguous.",
         keywords=("maxrequestworkers", "maxclients", "worker_connections", "seems busy", "max_children",
                   "listen queue", "free workers", "currently busy", "queue is full", "queue full", "maxconn",
                   "workers are busy", "no idle worker", "no available worker", "maximum number of")),
)

_LEVEL = re.compile(
    r"\b(?:err|error|crit|critical|alert|emerg|emergency|fatal|fail|fails|failed|failure|failing|warn|warning"
    r"|exception|panic|severe|abort|aborted|aborting|unable|cannot|can't|could not|couldn't|traceback|refused)\b",
    _I)
_LEVEL_CAMEL = re.compile(
    r"[a-z](?:Error|Exception|Fault)\b|^<[0-4]>|^\d+:[A-Z] \d{1,2} [A-Z][a-z]{2} \d{4} [\d:.]+ # "
    r"|\bE(?:CONNRESET|CONNREFUSED|CONNABORTED|TIMEDOUT|PIPE|AGAIN|NOMEM|NOSPC|ACCES|MFILE|NFILE|IO|HOSTUNREACH"
    r"|NETUNREACH|AI_AGAIN|AI_NONAME|NOTFOUND)\b")
_DEBUG = re.compile(r"\bDEBUG\d?\b|\bTRACE\b|\[(?:debug|trace)\]|level=(?:debug|trace)\b"
                    r"|\"(?:level|severity)\"\s*:\s*\"(?:debug|trace)\"", )
_LOW = re.compile(r"\[(?:info|notice)\]|:(?:info|notice)\]|\b(?:INFO|NOTICE)\b|\bLOG:  |level=(?:info|notice)\b"
                  r"|\"(?:level|severity)\"\s*:\s*\"(?:info|notice)\"", _I)
_KEYWORDS: tuple[bytes, ...] = tuple(sorted({k.encode() for sig in SIGNATURES for k in sig.keywords}))


def says_problem(line: str) -> bool:
    """Whether a line says it reports a problem: a level word (error, warn,
    crit, fatal, failed...), an exception class, an errno name, a failure
    phrase (could not, unable, cannot), a syslog priority 0-4, or Redis's '#'
    warning mark."""
    return _LEVEL.search(line) is not None or _LEVEL_CAMEL.search(line) is not None


def is_low_level(line: str) -> bool:
    """Whether a line says it is informational (info, notice, PostgreSQL's
    LOG): programs log what they handled there, such as clients that went
    away (nginx) or sessions that expired (ZooKeeper)."""
    return _LOW.search(line) is not None


def is_debug(line: str) -> bool:
    """Whether a line says it is debug or trace output."""
    return _DEBUG.search(line) is not None


def match_line(line: str) -> tuple[Signature, ...]:
    """The signatures one log line counts for (most lines: none)."""
    low = line.lower()
    return tuple(s for s in SIGNATURES if any(k in low for k in s.keywords) and s.matches(line))


def candidate_lines(text: str) -> list[int]:
    """Indexes, in ``text.split("\\n")``, of the lines that contain a keyword of
    some signature, ascending: one substring search per keyword over the whole
    text, far cheaper than the regexes on every line."""
    data = text.encode("utf-8", "surrogatepass").lower()
    hits: set[int] = set()
    for key in _KEYWORDS:
        i = data.find(key)
        while i >= 0:
            hits.add(i)
            i = data.find(key, i + 1)
    if not hits:
        return []
    newlines = [m.start() for m in re.finditer(b"\n", data)]
    return sorted({bisect.bisect_left(newlines, pos) for pos in hits})


def signature_findings() -> tuple[str, ...]:
    """The finding ids the signature table can support, in table order."""
    return tuple(dict.fromkeys(s.finding for s in SIGNATURES))
