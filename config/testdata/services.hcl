node_name = "db-02"
addresses {
  http = "127.0.0.2"
}
ports {
  http = 8600
}
node_meta {
  rack = "r7"
}
retry_join = ["10.1.0.1"]
log_level = "warn"
reap_after = "1h"

services {
  name = "db"
  port = 5432
  checks = [
    { tcp = "127.0.0.1:5432", interval = "5s" },
    { ttl = "1m", check_id = "db-ttl" },
  ]
}

services {
  Name = "cache"
  Port = 6379
  Check {
    TCP      = "127.0.0.1:6379"
    Interval = "10s"
    Timeout  = "2s"
  }
  weights {
    passing = 3
    warning = 0
  }
}
