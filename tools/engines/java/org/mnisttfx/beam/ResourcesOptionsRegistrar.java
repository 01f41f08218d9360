package org.mnisttfx.beam;

import java.util.Collections;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsRegistrar;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesOptions;

/**
 * Registers Beam's PipelineResourcesOptions with the job server, which then
 * describes them to the Python SDK: the SDK passes on only the options a job
 * server describes, so without this {@code --pipeline_resources_detector_factory_class}
 * would never reach the runner.
 */
public class ResourcesOptionsRegistrar implements PipelineOptionsRegistrar {
  @Override
  public Iterable<Class<? extends PipelineOptions>> getPipelineOptions() {
    return Collections.singletonList(PipelineResourcesOptions.class);
  }
}
