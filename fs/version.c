/* version.c — `zestfs --version` / `zestfs version`: what this binary is and
 * what it was built with.  The library versions are the ones loaded at run
 * time where the library can say (libcurl, libuv, liblz4, libcjson,
 * libmicrohttpd, libfuse), so a bug report names what really ran. */
#include <blake3.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <lz4.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "cli.h"

#ifndef ZESTFS_VERSION
#define ZESTFS_VERSION "unknown"
#endif

int zestfs_cmd_version(int argc, char **argv)
{
    int json = argc >= 2 && strcmp(argv[1], "--json") == 0;
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    int fv = fuse_version();
    char fuse[16];
    /* fuse_version() is major * 100 + minor (3.14 -> 314) */
    snprintf(fuse, sizeof fuse, "%d.%d", fv / 100, fv % 100);
    int h2 = (cv->features & CURL_VERSION_HTTP2) != 0;
    const char *tls = cv->ssl_version ? cv->ssl_version : "none";
    if (json) {
        printf("{\"version\":\"%s\",\"libfuse\":\"%s\",\"libcurl\":\"%s\",\"tls\":\"%s\","
               "\"libuv\":\"%s\",\"liblz4\":\"%s\",\"libcjson\":\"%s\",\"libmicrohttpd\":\"%s\","
               "\"blake3\":\"%s\",\"features\":[\"xet\",\"p2p\",\"dht\",\"trackers\",\"pex\","
               "\"ut_xet\",\"passthrough\",\"http-access\",\"metrics\"%s]}\n",
               ZESTFS_VERSION, fuse, cv->version, tls, uv_version_string(), LZ4_versionString(),
               cJSON_Version(), MHD_get_version(), BLAKE3_VERSION_STRING, h2 ? ",\"http2\"" : "");
        return 0;
    }
    printf("zestfs %s\n", ZESTFS_VERSION);
    printf("  libfuse %s, libcurl %s (%s%s), libuv %s, liblz4 %s, libcjson %s,\n"
           "  libmicrohttpd %s, BLAKE3 %s\n",
           fuse, cv->version, tls, h2 ? ", HTTP/2" : "", uv_version_string(), LZ4_versionString(),
           cJSON_Version(), MHD_get_version(), BLAKE3_VERSION_STRING);
    printf("  features: xet, p2p (BitTorrent, ut_xet), dht, trackers, pex, passthrough "
           "(Linux >= 6.9), http-access, metrics\n");
    return 0;
}
