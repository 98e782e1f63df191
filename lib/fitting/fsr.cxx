// Final-state radiation as its own component of the true line shape, for the FFT convolution with
// the detector's resolution.
//
// A radiating event loses u >= 0 GeV of mass with the kernel K(u) = exp(-u / scale) / scale; a
// share `fraction` of the events radiates. The true line shape is then
//     (1 - fraction) L(x) + fraction (L (x) K)(x),   (L (x) K)(x) = int_0^inf K(u) L(x + u) du,
// and the detector's resolution is convolved with it by RooFFTConvPdf: one FFT, as without FSR.
//
// EbeRadiatedBreitWigner: L is the Breit-Wigner (Cauchy, RooBreitWigner's shape) of the Z. The
// radiated part is an integral over the Breit-Wigner's angle theta, u = (mass - x) + (width / 2)
// tan(theta), which turns the Breit-Wigner into a constant and leaves the smooth factor K(u):
//     R(x) = (1 / pi) int_{theta_0}^{pi / 2} K(u(theta)) dtheta,   u(theta_0) = 0.
// Gauss-Legendre nodes on s in [0, 1], theta = theta_0 + (pi / 2 - theta_0) s^3 (dense where K is
// largest): fixed nodes, so the value is smooth in every parameter. Its distribution function is
// closed in R: P(X <= x) = C(x) + scale R(x), C the Breit-Wigner's, which gives the integral.
//
// EbeRadiatedDelta: L is a delta at `mass` (a natural width negligible against the resolution,
// the Higgs boson). The FFT samples its input at the centres of its cache bins, so both parts are
// averaged over `binWidth` around x: the delta as a triangle of half-width binWidth (on the cache
// grid, the linear share between the two bins around `mass`), the kernel over the bin from its
// distribution function. Either keeps the samples continuous in `mass`, so Minuit sees no steps.

#include "RooAbsPdf.h"
#include "RooAbsReal.h"
#include "RooArgSet.h"
#include "RooRealProxy.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

class EbeRadiatedBreitWigner : public RooAbsPdf {
public:
   EbeRadiatedBreitWigner() = default;
   EbeRadiatedBreitWigner(const char *name, const char *title, RooAbsReal &x, RooAbsReal &mass, RooAbsReal &width,
                          RooAbsReal &fraction, RooAbsReal &scale, std::vector<double> nodes, std::vector<double> weights)
      : RooAbsPdf(name, title),
        _x("x", "observable", this, x),
        _mass("mass", "Breit-Wigner mass", this, mass),
        _width("width", "Breit-Wigner width", this, width),
        _fraction("fraction", "radiating fraction", this, fraction),
        _scale("scale", "mean mass loss of a radiating event", this, scale),
        _nodes(std::move(nodes)),
        _weights(std::move(weights))
   {
      if (_nodes.empty() || _nodes.size() != _weights.size()) {
         throw std::invalid_argument(std::string(name) + ": quadrature needs as many weights as nodes, and some");
      }
   }

   EbeRadiatedBreitWigner(const EbeRadiatedBreitWigner &other, const char *name = nullptr)
      : RooAbsPdf(other, name),
        _x("x", this, other._x),
        _mass("mass", this, other._mass),
        _width("width", this, other._width),
        _fraction("fraction", this, other._fraction),
        _scale("scale", this, other._scale),
        _nodes(other._nodes),
        _weights(other._weights)
   {
   }

   TObject *clone(const char *name) const override { return new EbeRadiatedBreitWigner(*this, name); }

   Int_t getAnalyticalIntegral(RooArgSet &allVars, RooArgSet &analVars, const char * /*rangeName*/ = nullptr) const override
   {
      return matchArgs(allVars, analVars, _x) ? 1 : 0;
   }

   double analyticalIntegral(Int_t /*code*/, const char *rangeName = nullptr) const override
   {
      const double lo = _x.min(rangeName);
      const double hi = _x.max(rangeName);
      return distribution(hi) - distribution(lo);
   }

protected:
   double evaluate() const override
   {
      const double f = _fraction;
      return (1.0 - f) * breitWigner(_x) + f * cachedRadiated(_x);
   }

private:
   double halfWidth() const { return 0.5 * static_cast<double>(_width); }

   double breitWigner(double x) const
   {
      const double g = halfWidth();
      const double d = x - _mass;
      return g / (M_PI * (d * d + g * g));
   }

   /// (BW (x) K)(x) by the quadrature over theta described above.
   double radiated(double x) const
   {
      const double g = halfWidth();
      const double scale = _scale;
      const double peak = _mass - x; // the loss u at which the Breit-Wigner peaks
      const double start = std::atan(-peak / g);
      const double length = 0.5 * M_PI - start;
      double sum = 0.0;
      for (std::size_t i = 0; i < _nodes.size(); ++i) {
         const double s = _nodes[i];
         const double theta = start + length * s * s * s;
         const double u = peak + g * std::tan(theta);
         sum += _weights[i] * 3.0 * s * s * std::exp(-u / scale);
      }
      return sum * length / (M_PI * scale);
   }

   /// radiated(x) from a table over the observable's range and as much again on either side (the
   /// FFT's buffer), rebuilt when the Breit-Wigner or the kernel changed, cubic between its points.
   /// The table is exact up to rounding: with S(x) = scale R(x) = int_x^inf exp(-(y - x) / scale) BW(y) dy,
   ///     S(x) = exp(-h / scale) S(x + h) + int_x^{x+h} exp(-(y - x) / scale) BW(y) dy,
   /// from the top point (the quadrature) down, each step's integral by 4-point Gauss-Legendre.
   /// Outside the table, the quadrature.
   double cachedRadiated(double x) const
   {
      if (_cachedMass != _mass || _cachedWidth != _width || _cachedScale != _scale) {
         fillTable();
      }
      const double u = (x - _tableStart) / kTableStep;
      if (!(u >= 1.0 && u < static_cast<double>(_table.size()) - 2.0)) {
         return radiated(x);
      }
      const auto k = static_cast<std::size_t>(u);
      const double t = u - static_cast<double>(k);
      const double *p = &_table[k - 1];
      // Cubic Lagrange through the points k-1 .. k+2.
      return p[0] * (-t * (t - 1.0) * (t - 2.0) / 6.0) + p[1] * ((t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0) +
             p[2] * (-(t + 1.0) * t * (t - 2.0) / 2.0) + p[3] * ((t + 1.0) * t * (t - 1.0) / 6.0);
   }

   void fillTable() const
   {
      _cachedMass = _mass;
      _cachedWidth = _width;
      _cachedScale = _scale;
      const double lo = _x.min();
      const double hi = _x.max();
      const double span = hi - lo;
      _tableStart = lo - span;
      const auto n = static_cast<std::size_t>(std::ceil(3.0 * span / kTableStep)) + 1;
      _table.assign(n, 0.0);
      const double scale = _scale;
      // 4-point Gauss-Legendre on [0, h]: nodes and weights times the kernel's decay there.
      static const double gx[4] = {0.0694318442029737, 0.3300094782075719, 0.6699905217924281, 0.9305681557970263};
      static const double gw[4] = {0.1739274225687269, 0.3260725774312731, 0.3260725774312731, 0.1739274225687269};
      double nodes[4], weights[4];
      for (int j = 0; j < 4; ++j) {
         nodes[j] = gx[j] * kTableStep;
         weights[j] = gw[j] * kTableStep * std::exp(-nodes[j] / scale);
      }
      const double decay = std::exp(-kTableStep / scale);
      const double mass = _mass;
      const double g = halfWidth();
      double s = scale * radiated(_tableStart + kTableStep * static_cast<double>(n - 1));
      _table[n - 1] = s / scale;
      for (std::size_t i = n - 1; i-- > 0;) {
         const double x = _tableStart + kTableStep * static_cast<double>(i);
         double step = 0.0;
         for (int j = 0; j < 4; ++j) {
            const double d = x + nodes[j] - mass;
            step += weights[j] * g / (M_PI * (d * d + g * g));
         }
         s = decay * s + step;
         _table[i] = s / scale;
      }
   }

   /// The distribution function of the whole line shape (radiating and not).
   double distribution(double x) const
   {
      const double cauchy = 0.5 + std::atan((x - _mass) / halfWidth()) / M_PI;
      const double f = _fraction;
      return cauchy + f * static_cast<double>(_scale) * radiated(x);
   }

   RooRealProxy _x;
   RooRealProxy _mass;
   RooRealProxy _width;
   RooRealProxy _fraction;
   RooRealProxy _scale;
   std::vector<double> _nodes;   // Gauss-Legendre nodes on [0, 1]
   std::vector<double> _weights; // and their weights (summing to 1)
   static constexpr double kTableStep = 0.01;        // GeV between the table's points
   mutable std::vector<double> _table;               //! radiated(x) at _tableStart + i kTableStep
   mutable double _tableStart = 0.0;                 //!
   mutable double _cachedMass = NAN;                  //!
   mutable double _cachedWidth = NAN;                 //!
   mutable double _cachedScale = NAN;                 //!
};

class EbeRadiatedDelta : public RooAbsPdf {
public:
   EbeRadiatedDelta() = default;
   EbeRadiatedDelta(const char *name, const char *title, RooAbsReal &x, RooAbsReal &mass, RooAbsReal &fraction,
                    RooAbsReal &scale, double binWidth)
      : RooAbsPdf(name, title),
        _x("x", "observable", this, x),
        _mass("mass", "peak mass", this, mass),
        _fraction("fraction", "radiating fraction", this, fraction),
        _scale("scale", "mean mass loss of a radiating event", this, scale),
        _binWidth(binWidth)
   {
      if (!(_binWidth > 0)) {
         throw std::invalid_argument(std::string(name) + ": the cache bin width must be positive");
      }
   }

   EbeRadiatedDelta(const EbeRadiatedDelta &other, const char *name = nullptr)
      : RooAbsPdf(other, name),
        _x("x", this, other._x),
        _mass("mass", this, other._mass),
        _fraction("fraction", this, other._fraction),
        _scale("scale", this, other._scale),
        _binWidth(other._binWidth)
   {
   }

   TObject *clone(const char *name) const override { return new EbeRadiatedDelta(*this, name); }

   Int_t getAnalyticalIntegral(RooArgSet &allVars, RooArgSet &analVars, const char * /*rangeName*/ = nullptr) const override
   {
      return matchArgs(allVars, analVars, _x) ? 1 : 0;
   }

   double analyticalIntegral(Int_t /*code*/, const char *rangeName = nullptr) const override
   {
      // The unsmoothed shape's content of the range: the smoothing moves content by a fraction of a bin.
      const double lo = _x.min(rangeName);
      const double hi = _x.max(rangeName);
      const double f = _fraction;
      const double peak = (lo < _mass && _mass <= hi) ? 1.0 : 0.0;
      return (1.0 - f) * peak + f * (kernelDistribution(hi) - kernelDistribution(lo));
   }

protected:
   double evaluate() const override
   {
      const double x = _x;
      const double h = _binWidth;
      const double f = _fraction;
      const double triangle = std::max(0.0, 1.0 - std::abs(x - _mass) / h) / h;
      const double kernel = (kernelDistribution(x + 0.5 * h) - kernelDistribution(x - 0.5 * h)) / h;
      return (1.0 - f) * triangle + f * kernel;
   }

private:
   /// P(mass - u <= x) for u ~ K: exp(-(mass - x) / scale) below the mass, 1 above.
   double kernelDistribution(double x) const
   {
      const double below = _mass - x;
      return below <= 0.0 ? 1.0 : std::exp(-below / static_cast<double>(_scale));
   }

   RooRealProxy _x;
   RooRealProxy _mass;
   RooRealProxy _fraction;
   RooRealProxy _scale;
   double _binWidth = 1.0;
};
