package gossip

// sysSendmmsg is sendmmsg(2)'s number; package syscall does not define it here.
const sysSendmmsg = 307
