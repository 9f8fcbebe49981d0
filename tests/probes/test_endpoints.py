"""The address parsers on configuration samples written the way people write them."""

from __future__ import annotations

from ddx.probes.parsers.endpoints import (
    Endpoint,
    parse_nginx,
    parse_settings,
    split_hostport,
    without_upstream_names,
)

NGINX = """\
user www-data;
worker_processes auto;
http {
    include /etc/nginx/conf.d/*.conf;
    include sites-enabled/*;
    upstream app {          # the application servers
        server 127.0.0.1:8001 weight=2;
        server 10.0.0.7:8001 max_fails=3 fail_timeout=10s;
        server unix:/run/app.sock;
        server backend.internal;
        keepalive 16;
    }
    upstream php { server 127.0.0.1:9000; }
    server {
        listen 80;
        server_name example.com;
        location / { proxy_pass http://app; }
        location /api/ {
            proxy_pass http://10.1.1.1:9000/api/;
        }
        location /v { proxy_pass http://$backend; }
        location ~ \\.php$ { fastcgi_pass php; }
        location /fpm { fastcgi_pass 127.0.0.1:9001; }
        location /u { uwsgi_pass unix:/run/uwsgi.sock; }
        location /m { set $memcached_key "$uri"; memcached_pass 127.0.0.1:11211; }
        location /s { proxy_pass https://secure.example.com; }
        # proxy_pass http://10.9.9.9:1234;  (commented out)
    }
}
"""


def addrs(eps: list[Endpoint] | tuple[Endpoint, ...]) -> list[tuple[str, int, int, str]]:
    return [(e.host, e.port, e.line, e.what) for e in eps]


def test_nginx_upstreams_passes_and_includes() -> None:
    conf = parse_nginx(NGINX, "/etc/nginx/nginx.conf")
    assert addrs(conf.endpoints) == [
        ("127.0.0.1", 8001, 7, "upstream app"),
        ("10.0.0.7", 8001, 8, "upstream app"),
        ("backend.internal", 80, 10, "upstream app"),  # no port: nginx's default 80
        ("127.0.0.1", 9000, 13, "upstream php"),
        ("10.1.1.1", 9000, 19, "proxy_pass"),
        ("127.0.0.1", 9001, 23, "fastcgi_pass"),
        ("127.0.0.1", 11211, 25, "memcached_pass"),
        ("secure.example.com", 443, 26, "proxy_pass"),
    ]
    assert conf.includes == ("/etc/nginx/conf.d/*.conf", "sites-enabled/*")
    assert [(u.name, len(u.servers)) for u in conf.upstreams] == [("app", 3), ("php", 1)]
    # Only "app" is proxied over plain HTTP (php is FastCGI): only it gets HTTP backend checks.
    assert "app" in conf.http_upstreams and "php" not in conf.http_upstreams


def test_nginx_pass_to_upstream_of_another_file() -> None:
    site = parse_nginx("server { location / { proxy_pass http://shop; } }", "/etc/nginx/sites-enabled/shop")
    ups = parse_nginx("upstream shop { server 127.0.0.1:8080; server 127.0.0.1:8081; }", "/etc/nginx/conf.d/up.conf")
    assert addrs(site.endpoints) == [("shop", 80, 1, "proxy_pass")]
    kept = without_upstream_names(list(site.endpoints) + list(ups.endpoints), list(ups.upstreams))
    assert [(e.host, e.port) for e in kept] == [("127.0.0.1", 8080), ("127.0.0.1", 8081)]


def test_nginx_garbage_gives_nothing_not_an_error() -> None:
    conf = parse_nginx("}}} { server ; upstream { ; proxy_pass ; \"unterminated", "x.conf")
    assert conf.endpoints == () and conf.includes == ()


ENV = """\
# production settings
DATABASE_URL=postgres://app:s3cr3t@db1.internal:5432/app
export REDIS_URL="redis://:pa55@127.0.0.1:6380/0"
MEMCACHED_SERVERS=10.0.0.5:11211,10.0.0.6:11211
DB_HOST=10.0.0.9
DB_PORT=5433
REDIS_CACHE_HOST=cache.internal
BIND=0.0.0.0:8000
LISTEN_ADDR=127.0.0.1:9000
TEMPLATE_URL=http://${API_HOST}:80/
LUNCH_TIME=12:30
SECRET_KEY=abc:1234
"""


def test_env_file_urls_lists_and_pairs() -> None:
    eps = parse_settings(ENV, "/srv/app/.env")
    assert addrs(eps) == [
        ("db1.internal", 5432, 2, "DATABASE_URL"),
        ("127.0.0.1", 6380, 3, "REDIS_URL"),
        ("10.0.0.5", 11211, 4, "MEMCACHED_SERVERS"),
        ("10.0.0.6", 11211, 4, "MEMCACHED_SERVERS"),
        ("10.0.0.9", 5433, 5, "DB_HOST + DB_PORT"),
        ("cache.internal", 6379, 7, "REDIS_CACHE_HOST (default port)"),
    ]
    # Credentials never reach an Endpoint.
    assert not any("s3cr3t" in repr(e) or "pa55" in repr(e) for e in eps)


YAML = """\
image: redis:7
production:
  database:
    adapter: postgresql
    host: pg.internal
    port: 5432
    password: "x:y@z"
  cache:
    servers:
      - 127.0.0.1:11211
      - cache2:11211
  other:
    port: 99
  listen: 0.0.0.0:3000
staging:
  database:
    host: pg-staging.internal
    port: 5434
"""


def test_yaml_nested_pairs_and_lists() -> None:
    eps = parse_settings(YAML, "/srv/app/config/database.yml")
    assert addrs(eps) == [
        ("pg.internal", 5432, 5, "host + port"),
        ("127.0.0.1", 11211, 10, "servers"),
        ("cache2", 11211, 11, "servers"),  # a short name is taken under an address key
        ("pg-staging.internal", 5434, 17, "host + port"),  # paired within its own parent only
    ]


def test_ini_toml_json() -> None:
    ini = "[memcache]\nservers = 10.1.0.1:11211 10.1.0.2:11211\n[db]\nhost = localhost\nport = 5432\n"
    assert addrs(parse_settings(ini, "app.ini")) == [
        ("10.1.0.1", 11211, 2, "servers"),
        ("10.1.0.2", 11211, 2, "servers"),
        ("localhost", 5432, 4, "host + port"),
    ]
    toml = '[cache]\nnodes = ["10.3.0.1:11211", "10.3.0.2:11211"]\n[db]\nurl = "mysql://u:p@[::1]:3307/d"\n'
    assert addrs(parse_settings(toml, "app.toml")) == [
        ("10.3.0.1", 11211, 2, "nodes"),
        ("10.3.0.2", 11211, 2, "nodes"),
        ("::1", 3307, 4, "url"),
    ]
    js = '{\n  "db": {\n    "host": "10.2.2.2",\n    "port": 3306\n  },\n  "api": "https://api.example.com/v1"\n}\n'
    assert addrs(parse_settings(js, "app.json")) == [
        ("10.2.2.2", 3306, 3, "host + port"),
        ("api.example.com", 443, 6, "api"),
    ]


def test_split_hostport() -> None:
    assert split_hostport("10.0.0.1:80") == ("10.0.0.1", 80)
    assert split_hostport("[::1]:6379") == ("::1", 6379)
    assert split_hostport("Example.COM", 443) == ("example.com", 443)
    for bad in ("10.0.0.1:0", "10.0.0.1:70000", "0.0.0.0:80", "*:80", "999.1.1.1:80", "host", "a:b:c"):
        assert split_hostport(bad) is None, bad
