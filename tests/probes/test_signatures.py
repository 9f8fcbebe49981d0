"""The log signature table on real wording from many programs, near misses
that must not count, and the false-positive rate on real ordinary logs
(the Loghub samples in tests/data/loghub2k)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddx.probes.parsers.signatures import (
    SIGNATURES,
    candidate_lines,
    is_debug,
    match_line,
    says_problem,
    signature_findings,
)

LOGHUB = Path(__file__).resolve().parent.parent / "data" / "loghub2k"

# signature name -> lines it must count (real messages of several programs).
POSITIVE: dict[str, list[str]] = {
    "enospc": [
        "OSError: [Errno 28] No space left on device: '/var/lib/app/upload.tmp'",
        '2026/11/22 05:32:09 [crit] 1234#1234: *5 pwrite() "/var/lib/nginx/body/0000000001" failed '
        "(28: No space left on device), client: 10.0.0.7",
        "[Sun Nov 22 05:32:09.123456 2026] [core:error] [pid 4321] (28)No space left on device: "
        "AH00023: Couldn't create the proxy mutex",
        "2026-11-22T05:32:09.000000Z 12 [ERROR] [MY-010584] Disk is full writing './binlog.000042' "
        "(OS errno 28 - No space left on device). Waiting for someone to free space...",
        "161122  5:32:09 [ERROR] /usr/sbin/mysqld: Error writing file '/tmp/MYxyz' (Errcode: 28)",
        "2026-11-22 05:32:09.123 UTC [812] PANIC:  could not write to file \"pg_wal/xlogtemp.812\": "
        "No space left on device",
        "Error: ENOSPC: no space left on device, write",
        'level=error msg="write /var/lib/docker/tmp/x: no space left on device"',
        "1234:M 22 Nov 2026 05:32:09.123 # Write error saving DB on disk: No space left on device",
    ],
    "eio": [
        "OSError: [Errno 5] Input/output error: '/mnt/data/file'",
        "cp: error reading '/mnt/nfs/big.iso': Input/output error",
        "2026-11-22 05:32:09.123 UTC [99] ERROR:  could not read block 12 in file \"base/16384/2619\": "
        "Input/output error",
        "Error: EIO: i/o error, read",
    ],
    "eacces": [
        '2026/11/22 05:32:09 [crit] 77#77: *1 open() "/var/www/html/index.html" failed (13: Permission denied), '
        'client: 10.0.0.1, server: _, request: "GET / HTTP/1.1"',
        "PermissionError: [Errno 13] Permission denied: '/var/lib/app/cache/x.json'",
        '[22-Nov-2026 05:32:09 UTC] PHP Warning:  file_put_contents(/var/www/storage/cache/data): failed to '
        "open stream: Permission denied in /var/www/app/Cache.php on line 42",
        "[Sun Nov 22 05:32:09.1 2026] [core:error] [pid 9:tid 9] (13)Permission denied: [client 1.2.3.4:5] "
        "AH00035: access to /index.php denied",
        "Error: EACCES: permission denied, open '/app/logs/app.log'",
        "RuntimeException: Unable to write in the \"/var/www/var/cache/prod\" directory.",
        "The cache directory /var/www/drupal/sites/default/files is not writable",
        "WARNING: could not write to cache file /var/cache/app/index",
        "2026-11-22 05:32:09,001 ERROR Failed to write cache file /var/cache/app/a.bin",
        "java.io.FileNotFoundException: /data/out.csv (Permission denied)",
    ],
    "emfile": [
        "2026/11/22 05:32:09 [alert] 1#1: *9 socket() failed (24: Too many open files) while connecting to upstream",
        "OSError: [Errno 24] Too many open files: '/proc/self/fd'",
        "java.net.SocketException: Too many open files",
        "Error: EMFILE: too many open files, open '/app/x.js'",
        "kernel: VFS: file-max limit 65536 reached",
        "2026-11-22T05:32:09Z accept tcp [::]:8080: accept4: too many open files; retrying in 5ms",
        "Nov 22 05:32:09 web1 app[42]: OSError: [Errno 23] Too many open files in system",
    ],
    "fork": [
        "-bash: fork: retry: Resource temporarily unavailable",
        "bash: fork: Cannot allocate memory",
        "RuntimeError: can't start new thread",
        "java.lang.OutOfMemoryError: unable to create new native thread",
        "2026/11/22 05:32:09 [alert] 1#1: fork() failed while spawning \"worker process\" "
        "(11: Resource temporarily unavailable)",
        "[Sun Nov 22 05:32:09.1 2026] [mpm_prefork:error] [pid 1] (11)Resource temporarily unavailable: "
        "AH00159: fork: Unable to fork new process",
        "2026-11-22 05:32:09.123 UTC [1] LOG:  could not fork new process for connection: "
        "Resource temporarily unavailable",
        "runtime: failed to create new OS thread (have 2049 already; errno=11)",
        "ThreadError: can't create Thread: Resource temporarily unavailable",
        "pthread_create failed: Resource temporarily unavailable",
    ],
    "enomem": [
        "MemoryError",
        "OSError: [Errno 12] Cannot allocate memory",
        'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
        "PHP Fatal error:  Allowed memory size of 134217728 bytes exhausted (tried to allocate 20480 bytes) "
        "in /var/www/x.php on line 3",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "fatal error: runtime: out of memory",
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        "2026-11-22 05:32:09.123 UTC [5] ERROR:  out of memory",
        "(error) OOM command not allowed when used memory > 'maxmemory'.",
        "2026/11/22 05:32:09 [emerg] 1#1: malloc(4096) failed (12: Cannot allocate memory)",
    ],
    "epipe": [
        "BrokenPipeError: [Errno 32] Broken pipe",
        '2026/11/22 05:32:09 [error] 1#1: *3 writev() failed (32: Broken pipe) while sending request to upstream',
        "java.io.IOException: Broken pipe",
        "Error: write EPIPE",
    ],
    "econnrefused": [
        "2026/11/22 05:32:09 [error] 1#1: *7 connect() failed (111: Connection refused) while connecting to "
        'upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/"',
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "psycopg2.OperationalError: could not connect to server: Connection refused",
        "Error: connect ECONNREFUSED 127.0.0.1:6379",
        "java.net.ConnectException: Connection refused (Connection refused)",
        "[Sun Nov 22 05:32:09.1 2026] [proxy:error] [pid 2] (111)Connection refused: AH00957: HTTP: attempt "
        "to connect to 127.0.0.1:8080 (127.0.0.1) failed",
    ],
    "eaddrnotavail": [
        "2026/11/22 05:32:09 [crit] 1#1: *9 connect() failed (99: Cannot assign requested address) while "
        'connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1"',
        "OSError: [Errno 99] Cannot assign requested address",
        "java.net.NoRouteToHostException: Cannot assign requested address (Address not available)",
        "Error: connect EADDRNOTAVAIL 10.0.0.5:5432 - Local (0.0.0.0:0)",
        "redis.exceptions.ConnectionError: Error 99 connecting to 10.0.0.7:6379. Cannot assign requested address.",
    ],
    "timed_out": [
        "2026/11/22 05:32:09 [error] 1#1: *9 upstream timed out (110: Connection timed out) while reading "
        'response header from upstream, client: 10.0.0.1',
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443): Read timed out.",
        "[2026-11-22 05:32:09 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:42)",
        "java.net.SocketTimeoutException: Read timed out",
        "2026-11-22T05:32:09Z ERROR rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        "Error: connect ETIMEDOUT 10.0.0.5:5432",
        "TimeoutError: timed out",
        "Nov 22 05:32:09 web systemd[1]: dev-disk-by\\x2duuid-1234.device: Job dev-disk-by\\x2duuid-1234.device/start "
        "timed out.",
    ],
    "timeout": [
        "2026-11-22 05:32:09,123 WARNING redis timeout after 5.0 seconds",
        "2026-11-22T05:32:09Z ERROR upstream timeout calling billing-api",
        '{"level":"error","msg":"request failed","error":"timeout"}',
        "AxiosError: timeout of 5000ms exceeded",
    ],
    "econnreset": [
        "2026/11/22 05:32:09 [error] 1#1: *3 recv() failed (104: Connection reset by peer) while reading "
        "response header from upstream",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        "java.net.SocketException: Connection reset",
        "Error: read ECONNRESET",
        "WARNING: Software caused connection abort",
    ],
    "dns": [
        "socket.gaierror: [Errno -3] Temporary failure in name resolution",
        "socket.gaierror: [Errno -2] Name or service not known",
        "curl: (6) Could not resolve host: api.example.com",
        "2026/11/22 05:32:09 [error] 1#1: *1 api.internal could not be resolved (2: Server failure)",
        "java.net.UnknownHostException: db.internal: Name or service not known",
        'dial tcp: lookup db.internal on 10.0.0.2:53: no such host',
        "Error: getaddrinfo ENOTFOUND api.example.com",
        'psql: error: could not translate host name "db" to address: Temporary failure in name resolution',
    ],
    "dns_rcode": [
        "2026-11-22T05:32:09Z ERROR upstream lookup returned SERVFAIL for api.example.com",
        "WARN resolver: query for db.internal answered NXDOMAIN",
        "[error] failed to resolve billing.internal",
    ],
    "auth_failed": [
        "2026-12-06 03:10:02,114 ERROR payments: Stripe call failed: Invalid API Key provided: sk_live_****abcd",
        "ERROR msal: AADSTS7000222: The provided client secret keys for app 'mailer' are expired.",
        "level=error msg=\"s3 upload failed\" err=\"ExpiredToken: The security token included in the request is expired\"",
        "2026-12-06T03:10:02Z ERROR token refresh failed: invalid_grant",
        "[error] upstream api.example.com answered 401 Unauthorized for /v1/send",
        "botocore.exceptions.ClientError: An error occurred (InvalidClientTokenId) when calling the "
        "GetCallerIdentity operation: The security token included in the request is invalid. ERROR",
    ],
    "rate_limited": [
        "2026-12-06 03:10:02 ERROR sms: provider answered 429 Too Many Requests",
        "botocore.exceptions.ClientError: An error occurred (ThrottlingException) when calling the PutRecords "
        "operation: Rate exceeded",
        "WARN github client: API rate limit exceeded for installation 4242",
        "grpc error: code = RESOURCE_EXHAUSTED desc = quota exceeded for project",
        "S3 PutObject failed: SlowDown: Please reduce your request rate.",
    ],
    "gc_pause": [
        "[2026-12-06T03:10:02.123+0000][gc] GC(1042) Pause Full (G1 Compaction Pause) 3900M->3870M(4096M) 8123.456ms",
        "2026-12-06T03:10:02.123+0000: 5120.123: [Full GC (Allocation Failure)  3999M->3980M(4096M), 9.1 secs]",
        "2026-12-06 03:10:02,123 WARN org.apache.hadoop.util.JvmPauseMonitor: Detected pause in JVM or host "
        "machine (eg GC): pause of approximately 12034ms",
        "[2026-12-06T03:10:02,123][WARN ][o.e.m.j.JvmGcMonitorService] [node-1] [gc][old][4242][87] duration "
        "[15.2s], collections [1]/[15.9s], total [15.2s]/[3.1m], GC pause",
        "java.lang.OutOfMemoryError: GC overhead limit exceeded",
    ],
    "clock": [
        "2026-12-06 03:10:02 ERROR auth: jwt.exceptions.ImmatureSignatureError: The token is not yet valid (iat)",
        "Error: NotBeforeError: jwt not active",
        "botocore.exceptions.ClientError: An error occurred (RequestTimeTooSkewed) when calling the PutObject "
        "operation: The difference between the request time and the current time is too large.",
        "2026-12-06 03:10:02.123 7f1c mon.a@0(leader) e3 clock skew detected on mon.b, peer has a time off by 4.2s",
        "WARN etcdserver: the clock difference against peer 8e9e05c52164694d is too high [12.1s > 1s]",
        "ERROR api: request rejected: timestamp 1796526602 is outside the allowed window of 300 seconds",
        "krb5: Clock skew too great while getting initial credentials",
        "chronyd[512]: System clock wrong by 3612.004 seconds",
    ],
    "tls": [
        "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "certificate has expired (_ssl.c:1006)",
        "curl: (60) SSL certificate problem: certificate has expired",
        "x509: certificate has expired or is not yet valid: current time 2026-11-22T05:32:09Z is after "
        "2026-11-01T00:00:00Z",
        "javax.net.ssl.SSLHandshakeException: PKIX path building failed: sun.security.provider.certpath."
        "SunCertPathBuilderException: unable to find valid certification path to requested target",
        "Error: certificate has expired (code: 'CERT_HAS_EXPIRED')",
        "SSL: error:0A000086:SSL routines::certificate verify failed",
        "2026/11/22 05:32:09 [error] 1#1: *1 upstream SSL certificate verify error: (10:certificate has "
        "expired) while SSL handshaking to upstream",
    ],
    "tls_handshake": [
        "2026/11/22 05:32:09 [crit] 1#1: *1 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad "
        "key share) while SSL handshaking, client: 1.2.3.4, server: 0.0.0.0:443",
        "http: TLS handshake error from 1.2.3.4:5555: EOF",
        "[Sun Nov 22 05:32:09.1 2026] [ssl:error] [pid 3] AH02039: Certificate Verification: Error; "
        "SSL routines handshake failure",
    ],
    "request_too_large": [
        "2026/11/22 05:32:09 [error] 1#1: *9 client intended to send too large body: 10485760 bytes, "
        'client: 10.0.0.1, server: _, request: "POST /upload HTTP/1.1"',
        "2026/11/22 05:32:09 [info] 1#1: *9 client sent too long URI while reading client request line",
        "SERVER_ERROR object too large for cache",
        "PHP Warning:  PHP Request Startup: POST Content-Length of 9437184 bytes exceeds the limit of "
        "8388608 bytes in Unknown on line 0",
        "com.mysql.jdbc.PacketTooBigException: Packet for query is too large (4194305 > 4194304).",
        "2026-11-22T05:32:09.1Z 8 [Warning] Aborted connection 8 to db: 'app' (Got a packet bigger than "
        "'max_allowed_packet' bytes)",
        "PayloadTooLargeError: request entity too large",
        "[Sun Nov 22 05:32:09.1 2026] [core:error] [pid 5] AH00567: request failed: URI too long "
        "(longer than 8190)",
        "[Sun Nov 22 05:32:09.1 2026] [core:error] [pid 5] AH00561: Size of a request header field exceeds "
        "server limit.",
    ],
    "too_large": [
        "2026-11-22 05:32:09,123 ERROR upload rejected: file too large",
        "WARNING: message too big for queue, dropped",
        "[error] request line too long",
    ],
    "int_range": [
        '2026-11-22 05:32:09.123 UTC [5] ERROR:  integer out of range',
        'ERROR:  nextval: reached maximum value of sequence "orders_id_seq" (2147483647)',
        "ERROR 1264 (22003): Out of range value for column 'id' at row 1",
        "Mysql2::Error: Duplicate entry '2147483647' for key 'PRIMARY'",
        "ActiveModel::RangeError: 2147483648 is out of range for ActiveModel::Type::Integer with limit 4 bytes",
        "PG::NumericValueOutOfRange: ERROR:  bigint out of range",
        "ERROR 1467 (HY000): Failed to read auto-increment value from storage engine",
    ],
    "db_conns": [
        "2026-11-22 05:32:09.123 UTC [9] FATAL:  sorry, too many clients already",
        "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
        "ERROR 1040 (HY000): Too many connections",
        "(error) ERR max number of clients reached",
        "2026-11-22 05:32:09.123 UTC [1] ERROR C-0x55: no more connections allowed (max_client_conn)",
        'FATAL:  too many connections for role "app"',
    ],
    "lock_timeout": [
        "ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting transaction",
        "2026-11-22 05:32:09.123 UTC [7] ERROR:  deadlock detected",
        "ERROR 1213 (40001): Deadlock found when trying to get lock; try restarting transaction",
        "ERROR:  canceling statement due to lock timeout",
        'ERROR:  could not obtain lock on row in relation "jobs"',
        "sqlite3.OperationalError: database is locked",
        "Msg 1222, Level 16: Lock request time out period exceeded.",
        '2026-11-22 05:32:09.123 UTC [812] LOG:  process 812 still waiting for AccessExclusiveLock on relation '
        '16385 of database 16384 after 1000.123 ms',
        "2026-11-22 05:32:14.123 UTC [812] LOG:  process 812 acquired ShareLock on transaction 731 after "
        "5003.2 ms",
    ],
    "missing_code": [
        "ModuleNotFoundError: No module named 'drill_payments'",
        "ImportError: No module named yaml",
        "ImportError: cannot import name 'soft_unicode' from 'markupsafe'",
        "LoadError: cannot load such file -- nokogiri",
        "NameError: uninitialized constant PaymentsController",
        "NoMethodError: undefined method `perform_later' for ReportJob:Class",
        "/usr/sbin/apache2: symbol lookup error: /usr/lib/php/mod_php.so: undefined symbol: zend_ce_x",
        "myapp: error while loading shared libraries: libssl.so.1.1: cannot open shared object file: "
        "No such file or directory",
        'PHP Fatal error:  Uncaught Error: Class "App\\Payments\\Gateway" not found in /var/www/app.php:12',
        "PHP Fatal error:  Call to undefined function mysql_connect() in /var/www/db.php on line 3",
        "java.lang.ClassNotFoundException: com.example.Payments",
        "java.lang.NoClassDefFoundError: org/slf4j/LoggerFactory",
        "Error: Cannot find module 'express'",
        "Can't locate DBI.pm in @INC (you may need to install the DBI module)",
    ],
    "readonly_db": [
        "ERROR:  cannot execute INSERT in a read-only transaction",
        "ERROR 1290 (HY000): The MySQL server is running with the --read-only option so it cannot execute "
        "this statement",
        "ERROR 1290 (HY000): The MySQL server is running with the --super-read-only option so it cannot "
        "execute this statement",
        "sqlite3.OperationalError: attempt to write a readonly database",
        "(error) READONLY You can't write against a read only replica.",
        "FATAL:  the database system is in recovery mode",
        "ERROR:  recovery is in progress",
        "pymongo.errors.NotPrimaryError: not primary, NotWritablePrimary",
    ],
    "worker_limit": [
        "[Sun Nov 22 05:32:09.1 2026] [mpm_event:error] [pid 1:tid 1] AH00484: server reached MaxRequestWorkers "
        "setting, consider raising the MaxRequestWorkers setting",
        "[Sun Nov 22 05:32:09 2026] [error] server reached MaxClients setting, consider raising the MaxClients "
        "setting",
        "2026/11/22 05:32:09 [alert] 1#1: 768 worker_connections are not enough",
        "[22-Nov-2026 05:32:09] WARNING: [pool www] seems busy (you may need to increase pm.start_servers, or "
        "pm.min/max_spare_servers), spawning 8 children, there are 0 idle, and 20 total children",
        "[22-Nov-2026 05:32:09] WARNING: [pool www] server reached pm.max_children setting (5), consider "
        "raising it",
        'Nov 22 05:32:09 web kernel: sonewconn: pcb 0xfffff8000a: Listen queue overflow: 193 already in queue '
        'awaiting acceptance',
        '*** uWSGI listen queue of socket "127.0.0.1:3031" (fd: 3) full !!! (101/100) ***',
        "WARNING [http-nio-8080-exec-1] org.apache.tomcat.util.threads.ThreadPoolExecutor All threads (200) "
        "are currently busy, waiting. Increase maxThreads (200) or check the servlet status",
    ],
}

# Near misses: lines that look alike but must NOT count for the named signature.
NEGATIVE: dict[str, list[str]] = {
    "enospc": ["checking free space on /var: 42% used", "Errcode: 280 something", "disk fullness check passed"],
    "eio": ["Nov 22 05:32:09 web kernel: blk_update_request: I/O error, dev sda, sector 123",
            "kernel: Buffer I/O error on dev sda1, logical block 0, async page read",
            "Nov 22 05:32:09 web kernel: EXT4-fs warning (device sda1): ext4_end_bio: I/O error 10 writing "
            "to inode 12 Input/output error", "using video device Eiole"],
    "eacces": ["Nov 22 05:32:09 web sshd[123]: Connection closed by authenticating user root 1.2.3.4 "
               "port 22 [preauth] Permission denied (publickey)",
               "Permission denied (publickey,password).",
               "2026-11-22 05:32:09.123 UTC [5] ERROR:  permission denied for table orders",
               "ERROR 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)",
               "chmod 0644 applied to /var/www/index.html"],
    "emfile": ["worker_rlimit_nofile 65535;", "LimitNOFILE=1024", "max open files = 1024"],
    "fork": ["2026/11/22 05:32:09 [error] 1#1: *5 recv() failed (11: Resource temporarily unavailable) "
             "while reading upstream",
             "BlockingIOError: [Errno 11] Resource temporarily unavailable",
             "Nov 22 05:32:09 web systemd[1]: Started forked daemon nginx.", "thread pool started with 8 threads",
             "[Sun Nov 22 05:32:09.1 2026] [mpm_prefork:notice] [pid 1] AH00163: Apache/2.4 configured -- "
             "resuming normal operations", "child 123 forked"],
    "enomem": ["Nov 22 05:32:09 web kernel: Out of memory: Killed process 1234 (java) total-vm:123kB",
               "Nov 22 05:32:09 web kernel: java invoked oom-killer: gfp_mask=0x1100cca(GFP_HIGHUSER_MOVABLE)",
               "kernel: Memory cgroup out of memory: Killed process 99 (python3)",
               "/usr/bin/java -Xmx2g -XX:+HeapDumpOnOutOfMemoryError -jar app.jar",
               "java.lang.OutOfMemoryError: unable to create new native thread",
               "memory usage 45% of 8 GiB", "allocated 42 objects"],
    "epipe": ["Nov 22 05:32:09 web sshd[99]: packet_write_wait: Connection to 1.2.3.4 port 22: Broken pipe",
              "piped output to logger"],
    "econnrefused": ["Nov 22 05:32:09 web sshd[1]: error: connect_to 127.0.0.1 port 8080: failed: "
                     "Connection refused",
                     "refusing to start: already running"],
    "eaddrnotavail": ["2026/11/22 05:32:09 [emerg] 1#1: bind() to 10.0.0.5:80 failed (99: Cannot assign requested "
                      "address)",
                      "java.net.BindException: Cannot assign requested address",
                      "Error: listen EADDRNOTAVAIL: address not available 10.9.9.9:3000",
                      "errno 99 counters reset"],
    "timed_out": ["Nov 22 05:32:09 web sshd[5]: Connection timed out during banner exchange",
                  "DEBUG: connect timed out, retrying", "ERROR 1205 (HY000): Lock wait timeout exceeded",
                  "2026-11-22 05:32:09 INFO timed outputs enabled"],
    "timeout": ["2015-07-30 20:06:34,001 - INFO  [SessionTracker:ZooKeeperServer@325] - Expiring session "
                "0x24ede63a01b003b, timeout of 10000ms exceeded",
                "proxy_read_timeout 60s;", "2026-11-22 05:32:09,123 INFO client configured with timeout=30",
                "Nov 22 05:32:09 web sshd[5]: Timeout before authentication for 1.2.3.4 port 5555",
                "ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting transaction",
                "keepalive_timeout: 65", "2026-11-22 05:32:09 INFO request finished in 12ms (timeout 30s)",
                "DEBUG: connect timed out, retrying", "Worker timeout is 30 seconds"],
    "econnreset": ["Nov 22 05:32:09 web sshd[77]: Read error from remote host 1.2.3.4 port 5: Connection "
                   "reset by peer",
                   "Nov 22 05:32:09 web sshd[77]: error: kex_exchange_identification: read: Connection reset "
                   "by peer",
                   "2026/11/22 05:32:09 [info] 1#1: *8 recv() failed (104: Connection reset by peer) while "
                   "reading client request line",
                   "connection reset counters: 0",
                   "2026-11-22 05:32:09.123 UTC [77] LOG:  could not receive data from client: Connection reset "
                   "by peer"],
    "dns": ["Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.example.com "
            "[173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
            "Nov 22 05:32:09 mx postfix/smtpd[1]: warning: hostname x.example.com does not resolve to address "
            "1.2.3.4: Name or service not known",
            "calling getaddrinfo for db.internal"],
    "dns_rcode": ["dnsmasq[1]: reply bad.example.com is NXDOMAIN", "unbound[9]: info: resolving x. A IN SERVFAIL",
                  "Nov 22 05:32:09 mx postfix/smtpd[1]: warning: hostname x does not resolve to address 1.2.3.4"],
    "auth_failed": ["Dec  6 03:10:02 web1 sshd[812]: error: PAM: Authentication failure for root from 1.2.3.4",
                    "INFO token refreshed, expires in 3600 s",
                    "Dec  6 03:10:02 web1 sudo: pam_unix(sudo:auth): authentication failure; user=bob; "
                    "Your password has expired"],
    "rate_limited": ["INFO rate limiter configured: 100 requests per second",
                     "nginx: limit_req zone=api rate=10r/s configured"],
    "gc_pause": ["[2026-12-06T03:10:02.123+0000][gc] GC(1042) Pause Young (Normal) (G1 Evacuation Pause) "
                 "300M->120M(4096M) 4.123ms"],
    "clock": ["INFO token valid from 2026-12-06T03:10:02Z, not yet expired",
              "chronyd[512]: Selected source 192.0.2.1 (2.debian.pool.ntp.org)",
              "systemd[1]: Time has been changed",
              "the request timestamp is recorded for auditing"],
    "tls": ["loaded certificate /etc/ssl/certs/site.pem, expires 2027-01-01",
            "certificate renewed successfully"],
    "tls_handshake": ["2026/11/22 05:32:09 [info] 1#1: *1 SSL_do_handshake() failed (SSL: error:0A00010B:SSL "
                      "routines::wrong version number) while SSL handshaking",
                      "TLS handshake completed in 12ms"],
    "request_too_large": ["client_max_body_size 10m;", "LimitRequestBody 102400",
                          "axios defaults: maxContentLength=2000, maxBodyLength=2000"],
    "too_large": ["bash: /usr/bin/ls: Argument list too long", "OSError: [Errno 36] File name too long: 'aaaa'",
                  "ERROR: Value too large for defined data type", "the queue is not too long today",
                  "2026/11/22 05:32:09 [info] 1#1: *1 large body is not too large yet, failed check skipped"],
    "int_range": ["IndexError: list index out of range",
                  "panic: runtime error: index out of range [5] with length 3",
                  "Mysql2::Error: Duplicate entry '42' for key 'PRIMARY'",
                  "panic: runtime error: slice bounds out of range [:9] with capacity 8"],
    "db_conns": ["Nov 22 05:32:09 mx postfix/smtpd[1]: warning: Too many connections from 1.2.3.4",
                 "max_connections = 100", "connections: 12 of 100"],
    "missing_code": ["NoMethodError: undefined method `name' for nil:NilClass",
                     "404 page not found", "Installed module 'payments' (2.1.0)",
                     "2026-11-22 05:32:09 INFO loading module drill_payments"],
    "lock_timeout": ["deadlock_timeout = 1s", "log_lock_waits = on", "lock file /var/run/app.lock created", "unlocked the database"],
    "readonly_db": ["OSError: [Errno 30] Read-only file system: '/data/x'",
                    "EXT4-fs (sda1): Remounting filesystem read-only",
                    "recovery complete, database system is ready to accept connections"],
    "worker_limit": ["[Sun Nov 22 05:32:09 2026] [notice] Apache/2.4 configured -- resuming normal operations",
                     "2026/11/22 05:32:09 [notice] 1#1: start worker process 42",
                     "worker_connections 768;", "pm.max_children = 5"],
}

# Ordinary lines of healthy systems that must count for nothing.
NOTHING = [
    "Nov 22 05:32:09 web systemd[1]: Started Session 42 of user root.",
    "Nov 22 05:32:09 web CRON[1234]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    '10.0.0.1 - - [22/Nov/2026:05:32:09 +0000] "GET /health HTTP/1.1" 200 2 "-" "kube-probe/1.28"',
    "2026-11-22 05:32:09.123 UTC [1] LOG:  checkpoint complete: wrote 12 buffers (0.1%)",
    "2026-11-22 05:32:09,123 INFO werkzeug: 127.0.0.1 - - GET / 200",
    "DEBUG: retrying after error: No space left on device",
]


def _by_name(name: str):
    return next(s for s in SIGNATURES if s.name == name)


def test_every_signature_has_samples():
    names = {s.name for s in SIGNATURES}
    assert names == set(POSITIVE), "each signature needs real-world samples"
    assert names == set(NEGATIVE), "each signature needs near misses"
    assert all(len(POSITIVE[n]) >= 3 for n in names)


@pytest.mark.parametrize("name,line", [(n, ln) for n, lines in POSITIVE.items() for ln in lines])
def test_signature_matches_real_lines(name, line):
    sig = _by_name(name)
    assert sig.matches(line), f"{name} should count: {line}"
    assert sig in match_line(line)
    # The keyword prefilter must never hide a matching line.
    assert any(k in line.lower() for k in sig.keywords), f"{name}: no keyword in {line}"
    assert candidate_lines("x\n" + line + "\ny") == [1]


@pytest.mark.parametrize("name,line", [(n, ln) for n, lines in NEGATIVE.items() for ln in lines])
def test_signature_ignores_near_misses(name, line):
    assert not _by_name(name).matches(line), f"{name} must not count: {line}"


@pytest.mark.parametrize("line", NOTHING)
def test_ordinary_lines_match_nothing(line):
    assert match_line(line) == ()


def test_findings_of_the_table_are_in_the_vocabulary():
    import yaml

    import ddx

    vocab = yaml.safe_load((Path(ddx.__file__).parent / "kb/data/findings.yaml").read_text())
    contract = vocab.get("findings", vocab)
    for fid in signature_findings():
        assert fid in contract, fid
    assert "logs.new_error_signature" not in signature_findings()
    assert "logs.error_burst" not in signature_findings()


def test_level_words_and_debug():
    assert says_problem("2026/11/22 05:32:09 [error] 1#1: x")
    assert says_problem("java.net.SocketException: Connection reset")
    assert says_problem("1234:M 22 Nov 2026 05:32:09.123 # Connection reset")
    assert says_problem("Error: read ECONNRESET")
    assert not says_problem("2026/11/22 05:32:09 [info] 1#1: client closed connection")
    assert not says_problem("errors=remount-ro")
    assert is_debug("2026-11-22 05:32:09 DEBUG pool: connection reset")
    assert is_debug('{"level":"debug","msg":"x"}')
    assert not is_debug("debugging session opened for user")


def test_candidate_lines_finds_every_matching_line():
    lines = [ln for group in POSITIVE.values() for ln in group] + NOTHING[:5]
    text = "\n".join(lines)
    cands = set(candidate_lines(text))
    for i, ln in enumerate(lines):
        if match_line(ln):
            assert i in cands


@pytest.mark.parametrize("dataset,limit", [
    ("Linux", 0.02), ("OpenSSH", 0.0), ("Apache", 0.0), ("Zookeeper", 0.01), ("HDFS", 0.0), ("Spark", 0.0),
    ("Android", 0.01), ("HealthApp", 0.0),
])
def test_false_positive_rate_on_real_logs(dataset, limit):
    """Loghub's 2,000-line samples of ordinary system logs (a Linux syslog
    with scanners hammering sshd, an Apache error log, Hadoop and Android
    logs) hold none of the failures the signatures stand for, apart from a
    few real ones (klogind's 'Software caused connection abort' and
    'Permission denied in replay cache' on the Linux host). The share of lines
    that count must stay below ``limit``."""
    path = LOGHUB / dataset / f"{dataset}_2k.log"
    lines = path.read_text(errors="replace").splitlines()
    hits = [ln for ln in lines if match_line(ln)]
    assert len(hits) <= limit * len(lines), hits[:10]
