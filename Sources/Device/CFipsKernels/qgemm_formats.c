// The packed-format table of fips_qgemm.h, as data.
#include "fips_qgemm.h"

#define FIPS_QFORMAT_ROW(id, nm, b, lo, hi, tb, grp, sp, al) \
    {(id), (nm), (b), (lo), (hi), (tb), (grp), (sp), (al)},
static const fips_qformat_traits fips_qformat_rows[] = {FIPS_QFORMAT_TABLE(FIPS_QFORMAT_ROW)};
#undef FIPS_QFORMAT_ROW

const fips_qformat_traits *fips_qformat_traits_of(int format) {
    for (size_t i = 0; i < sizeof fips_qformat_rows / sizeof fips_qformat_rows[0]; i++)
        if (fips_qformat_rows[i].format == format) return &fips_qformat_rows[i];
    return NULL;
}
