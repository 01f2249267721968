{
  "targets": [
    {
      "target_name": "ecdsa_verify",
      "sources": ["native/ecdsa_verify.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
