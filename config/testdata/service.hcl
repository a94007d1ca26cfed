# One service in Consul's HCL, with one check block and header/meta blocks.
service {
  name = "web"
  port = 80
  tags = ["v2"]
  meta {
    team = "edge"
  }
  check {
    id       = "web-http"
    http     = "http://127.0.0.1:80/"
    interval = "10s"
    header {
      Authorization = ["Bearer x"]
    }
  }
}
