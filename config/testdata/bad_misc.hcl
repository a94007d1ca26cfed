# HCL type errors and hints.
node_name = 42
service {
  name  = "web"
  port  = "80"
  token = "secret"
  check {
    ttl    = "5s"
    status = 1
  }
  checks = [
    { tcp = "localhost:80", interval = 10 },
  ]
}
