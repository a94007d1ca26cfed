service {
  name = "web"
  port = 
}
