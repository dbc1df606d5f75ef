/* Streaming defaults: the same numbers as devices/stream's QualityConfig and StreamConfig (tests/test_firmware.py
 * checks that they stay equal). Change them with the runner's command-line options, not here. */
#ifndef JEFW_CONFIG_H
#define JEFW_CONFIG_H

#define JEFW_QUALITY_FLAT_PTP_MV 0.01             /* a lead varying less than this over FLAT_S is flat (off) */
#define JEFW_QUALITY_FLAT_S 1.0
#define JEFW_QUALITY_SATURATION_MAX_FRACTION 0.01 /* more samples at an ADC rail than this fraction: flagged */
#define JEFW_QUALITY_NOISE_HF_MV 0.04             /* RMS of the second difference / sqrt(6) above this: noisy */
#define JEFW_QUALITY_NOISE_BAND_STD_MV 3.0        /* band-passed standard deviation above this: motion artefact */
/* artefact score = weights . (log(hf + LOG_EPS), log(band std + LOG_EPS), log(lf ratio + LOG_EPS),
 * log(ptp ratio + LOG_EPS), periodicity); above ARTEFACT_MAX the lead is noisy (fitted on MIT-BIH DS1) */
#define JEFW_QUALITY_ARTEFACT_W_HF_MV 2.0124
#define JEFW_QUALITY_ARTEFACT_W_BAND_STD_MV -0.2005
#define JEFW_QUALITY_ARTEFACT_W_LF_RATIO 1.408
#define JEFW_QUALITY_ARTEFACT_W_PTP_RATIO 2.1638
#define JEFW_QUALITY_ARTEFACT_W_PERIODICITY -5.0267
#define JEFW_QUALITY_ARTEFACT_MAX -9.3
#define JEFW_QUALITY_LOG_EPS 0.0001
#define JEFW_QUALITY_SEGMENT_S 1.0
#define JEFW_QUALITY_PERIODICITY_FS 125.0         /* band-passed signal decimated to about this rate */
#define JEFW_QUALITY_PERIOD_MIN_S 0.3             /* heart-period lags searched */
#define JEFW_QUALITY_PERIOD_MAX_S 2.0
#define JEFW_STREAM_HYSTERESIS 0.05               /* on above threshold + h, off below threshold - h ... */
#define JEFW_STREAM_ON_WINDOWS 2                  /* ... after this many consecutive classified windows agree */
#define JEFW_STREAM_OFF_WINDOWS 2
#define JEFW_STREAM_CHUNK 360                     /* frames per read from stdin */

#endif
