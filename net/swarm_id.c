/* swarm_id.c — info-hashes of zestfs swarms (disc.h, "Swarm identity").
 * One swarm per repository; zest's per-xorb id kept for zest peers. */
#include <string.h>

#include <openssl/evp.h>

#include "disc.h"

void zn_swarm_repo_id(const char *type, const char *repo_id, uint8_t out[20])
{
    static const char prefix[] = "zestfs-repo-v1:";
    unsigned int olen = 20;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha1(), NULL) == 1) {
        EVP_DigestUpdate(c, prefix, sizeof prefix - 1);
        EVP_DigestUpdate(c, type, strlen(type));
        EVP_DigestUpdate(c, "/", 1);
        EVP_DigestUpdate(c, repo_id, strlen(repo_id));
        EVP_DigestFinal_ex(c, out, &olen);
    } else {
        memset(out, 0, 20);
    }
    EVP_MD_CTX_free(c);
}

void zn_swarm_xorb_id_zest(const xet_hash *xorb, uint8_t out[20])
{
    uint8_t buf[12 + 32];
    unsigned int olen = 20;
    memcpy(buf, "zest-xet-v1:", 12);
    memcpy(buf + 12, xorb->b, 32);
    EVP_Digest(buf, sizeof buf, out, &olen, EVP_sha1(), NULL);
}
