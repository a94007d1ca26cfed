service {
  name = "web"
}
service {
  name = "web2"
}
services {
  name = "api"
  check {
    tcp      = "localhost:80"
    interval = "10"
  }
  check {
    ttl = "5s"
  }
}
