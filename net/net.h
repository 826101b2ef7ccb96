/* net.h — libcurl on libuv, Hub/CAS clients, peer wire (issues #4, #5). Not yet written. */
#ifndef ZESTFS_NET_H
#define ZESTFS_NET_H
int znet_version(void);
#endif
