/* req.h — TODO contract */
#ifndef ZESTFS_FS_READ_REQ_H
#define ZESTFS_FS_READ_REQ_H

#include "read_int.h"

rd_pin *rd_pin_new(const zc_ref *ref);
void rd_pin_put(rd_pin *p);
int rd_pins_add(rd_pins *s, rd_pin *p);
void rd_pins_clear(rd_pins *s);
void rd_read_free(rd_read *r);
void rd_read_fail(rd_read *r, int err);
void rd_note_read(rd_read *r, int err);
void rd_read_answered_early(rd_read *r);

#endif
