package org.mnisttfx.beam;

import java.util.Collections;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesDetector;

/**
 * Stages no jars with a job: for clusters whose workers already hold the runner's
 * class path (pipeline/clusters/ puts the job server's jars on it).
 *
 * <p>By default Beam's job server scans its own class path and ships all of it
 * (some 150 MB) with every job, and each worker then loads the runner's classes
 * anew in a class loader of that job's own. Selected per job with
 * {@code --pipeline_resources_detector_factory_class=org.mnisttfx.beam.NothingToStage}.
 */
public class NothingToStage implements PipelineResourcesDetector.Factory {
  /** How Beam instantiates the factory named in the option. */
  public static NothingToStage create() {
    return new NothingToStage();
  }

  @Override
  public PipelineResourcesDetector getPipelineResourcesDetector() {
    return classLoader -> Collections.emptyList();
  }
}
