budget "x" {
  monthly = 1/0
}
